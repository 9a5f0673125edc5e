"""Blocks shared by every generation, named by role (see ``docs/architecture.md`` for the layer map)."""
