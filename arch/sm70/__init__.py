"""Volta-generation blocks: the synchronous (register-staged) mainloop and the m8n8k4 MMA (inline PTX)."""

from cute_attention.arch.sm70.mainloop import Sm70Sync
from cute_attention.arch.sm70.mma884 import mma_m8n8k4

__all__ = ["Sm70Sync", "mma_m8n8k4"]
