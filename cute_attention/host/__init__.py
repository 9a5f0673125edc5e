"""Layer 4: the host side of a launch: compile cache, launcher (split count, launch, reduction), the registry of
variants and facts read from cubins."""
