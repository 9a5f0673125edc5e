"""Host launcher (TurboMind's ``invokeAttention``): compile-cache lookup, then launch on the current stream.

Shared-memory size, grid and block come from the compiled kernel object (its ``__call__`` builds them
from the storage sizes and the tensors' shapes); the launch goes to ``torch.cuda.current_stream()``
of the tensors' device through TVM-FFI's environment stream.
"""

from __future__ import annotations

import functools

import torch

from cute_attention.compile_cache import CACHE, CompiledKernel, CompileKey, default_target


@functools.cache
def target() -> str:
    return default_target()


def compiled_for(variant, dtype: str, head_dim: int, mask, with_lse: bool) -> CompiledKernel:
    return CACHE.get(CompileKey(variant, dtype, head_dim, mask, with_lse, target()))


def launch(kernel: CompiledKernel, q, k, v, out, lse, scale: float, left: int, right: int) -> None:
    fn = kernel.fn  # the TVM-FFI function itself: no extra Python frame per launch
    if q.device.index != torch.cuda.current_device():
        with torch.cuda.device(q.device):
            fn(q, k, v, out, lse, scale, left, right)
    else:
        fn(q, k, v, out, lse, scale, left, right)
