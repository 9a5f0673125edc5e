"""Volta-generation blocks: the synchronous (register-staged) mainloop and the m8n8k4 MMA (inline PTX) with its
Impl. The SIMT Impl, which no generation owns, is :mod:`cute_attention.arch.common.simt_impl`."""

from cute_attention.arch.common.simt_impl import ImplSimt, Simt
from cute_attention.arch.sm70.impl884 import Impl884, Mma884
from cute_attention.arch.sm70.mainloop import Sm70Sync
from cute_attention.arch.sm70.mma884 import mma_m8n8k4

__all__ = ["Impl884", "ImplSimt", "Mma884", "Simt", "Sm70Sync", "mma_m8n8k4"]
