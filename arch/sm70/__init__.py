"""Volta-generation blocks: the synchronous (register-staged) mainloop."""

from cute_attention.arch.sm70.mainloop import Sm70Sync

__all__ = ["Sm70Sync"]
