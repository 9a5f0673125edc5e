"""Host launcher (TurboMind's ``invokeAttention``): compile-cache lookup, then launch on the current stream.

Shared-memory size, grid and block come from the compiled kernel object (its ``__call__`` builds them
from the storage sizes and the tensors' shapes); the launch goes to ``torch.cuda.current_stream()``
of the tensors' device through TVM-FFI's environment stream.
"""

from __future__ import annotations

import functools

import torch

from cute_attention.compile_cache import CACHE, CompiledKernel, CompileKey, default_target

_fast: dict[tuple, CompiledKernel] = {}


@functools.cache
def target() -> str:
    return default_target()


def compiled_for(variant, dtype: str, head_dim: int, mask, with_lse: bool) -> CompiledKernel:
    fast_key = (variant, dtype, head_dim, mask, with_lse)
    entry = _fast.get(fast_key)
    if entry is None:
        entry = CACHE.get(CompileKey(variant, dtype, head_dim, mask, with_lse, target()))
        _fast[fast_key] = entry
    return entry


def launch(variant, dtype: str, head_dim: int, mask, q, k, v, out, lse, scale: float, left: int, right: int):
    kernel = compiled_for(variant, dtype, head_dim, mask, lse is not None)
    if q.device.index != torch.cuda.current_device():
        with torch.cuda.device(q.device):
            kernel(q, k, v, out, lse, scale, left, right)
    else:
        kernel(q, k, v, out, lse, scale, left, right)
