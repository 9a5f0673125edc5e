"""A contiguous K/V cache (TurboMind's ``LinearIteratorFactory``): ``(batch, seqlen_k, nheads_kv, head_dim)``,
with each sequence's length from the tensor's extent or, with ``seqlens``, from ``cache_seqlens`` (a cache with
room left, clamped to its capacity in the kernel)."""

from __future__ import annotations

from dataclasses import dataclass

import cutlass.cute as cute
from cutlass import Int32


@dataclass(frozen=True)
class LinearKVCache:
    """Contiguous K/V of shape ``(batch, seqlen_k, nheads_kv, head_dim)`` (any strides but the last)."""

    seqlens: bool = False  # lengths from cache_seqlens (batch,) int32 rather than from the tensor
    name: str = "linear"
    paged = False  # tiles() returns a tensor of tiles
    block_size = 0

    @staticmethod
    def tiles(m: cute.Tensor, batch: Int32, kv_head: Int32, tile_n: int, head_dim: int,
              block_table: cute.Tensor | None = None) -> cute.Tensor:
        # (tile_n, head_dim, tiles)
        return cute.local_tile(m[batch, None, kv_head, None], (tile_n, head_dim), (None, 0))

    @staticmethod
    def capacity(m, block_table=None):
        """Tokens one sequence can hold (torch or DSL tensors)."""
        return m.shape[1]

    @staticmethod
    def token_row(m: cute.Tensor, block_table: cute.Tensor | None, batch: Int32, token: Int32) -> cute.Tensor:
        """``(nheads_kv, d)`` slot of logical token ``token`` of sequence ``batch``."""
        return m[batch, token, None, None]
