"""Layer 3: kernel objects (attention, split-K reduction, KV append), their parameter records, and the pieces a
kernel body is composed of: CTA work, the prologue slot, the epilogue, the shared-storage struct, the CTA map and
the variant that names one choice of each block."""
