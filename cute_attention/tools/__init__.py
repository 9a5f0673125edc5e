"""Layer 6: tools over the library: the catalogue, SASS reading, the fp32 reference and the command line."""
