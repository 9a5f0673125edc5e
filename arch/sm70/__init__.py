"""Volta-generation blocks: the synchronous (register-staged) mainloop, the m8n8k4 MMA (inline PTX) and its
Impl, and the SIMT (CUDA-core FMA) Impl."""

from cute_attention.arch.sm70.impl import Impl884, Mma884
from cute_attention.arch.sm70.mainloop import Sm70Sync
from cute_attention.arch.sm70.mma884 import mma_m8n8k4
from cute_attention.arch.sm70.simt import ImplSimt, Simt

__all__ = ["Impl884", "ImplSimt", "Mma884", "Simt", "Sm70Sync", "mma_m8n8k4"]
