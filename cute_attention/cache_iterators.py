"""Cache iterator factories: where the K/V tiles of one (batch, kv head) come from.

TurboMind's ``LinearIteratorFactory`` / ``BlockIteratorFactory``. The mainloop asks the factory for
the tiles of one sequence and indexes them by tile; the gmem iterator then takes each of its row
groups from that tile:

* ``LinearKVCache``: contiguous ``(batch, seqlen_k, nheads_kv, d)``; ``seqlens=True`` reads each
  sequence's length from ``cache_seqlens`` instead of the tensor's extent (a KV cache with room left).
* ``PagedKVCache(block_size)``: FlashAttention's paged cache ``(num_blocks, block_size, nheads_kv, d)``
  with ``block_table (batch, max_blocks)`` int32: logical row ``t`` of a sequence lives in block
  ``block_table[b, t // block_size]`` at row ``t % block_size`` (``index_math.paged_slot``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.index_math import paged_slot

PAGED_BLOCK_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class LinearKVCache:
    """Contiguous K/V of shape ``(batch, seqlen_k, nheads_kv, head_dim)`` (any strides but the last)."""

    seqlens: bool = False  # lengths from cache_seqlens (batch,) int32 rather than from the tensor
    name: str = "linear"

    @property
    def paged(self) -> bool:
        return False

    @staticmethod
    def tiles(m: cute.Tensor, batch: Int32, kv_head: Int32, tile_n: int, head_dim: int,
              block_table: cute.Tensor | None = None) -> cute.Tensor:
        # (tile_n, head_dim, tiles)
        return cute.local_tile(m[batch, None, kv_head, None], (tile_n, head_dim), (None, 0))


@dataclass(frozen=True)
class PagedSource:
    """One sequence's K or V in a paged cache: ``cache`` (num_blocks, block_size, d) of one kv head and
    the sequence's ``table`` row (max_blocks,). Partitioned by a gmem iterator into :class:`PagedPart`."""

    cache: Any
    table: Any
    tile_n: int
    block_size: int


@dataclass(frozen=True)
class PagedPart:
    """A thread's view of a paged source: ``part[None, None, None, n]`` is tile ``n`` (a :class:`PagedTile`)."""

    src: PagedSource
    thr: Any  # the thread's slice of the gmem iterator's tiled copy
    row0: Any
    t0_rows: Any

    def __getitem__(self, idx) -> PagedTile:
        return PagedTile(self, idx[3])


@dataclass(frozen=True)
class PagedTile:
    """Tile ``n`` of a paged source; ``tile[None, m, None]`` is the thread's ``(CPY, CPY_COLS)`` view of its
    row group ``m``, at the physical block that holds that row."""

    part: PagedPart
    n: Any

    def __getitem__(self, idx):
        return self.rows(idx[1])

    @cute.jit
    def rows(self, m: cutlass.Constexpr):
        p, s = self.part, self.part.src
        cache = s.cache
        row_stride = cache.layout.stride[1]
        # a (tile_n, d) view whose row R (this thread's row of group m) sits at the physical row of
        # logical token n * tile_n + R: a linear tile layout over a shifted base pointer
        rel = p.row0 + p.t0_rows[m]
        if cutlass.const_expr(s.block_size >= s.tile_n):
            rel = 0  # the whole tile lies in one block: one table lookup per tile
        block, row = paged_slot(s.table, self.n * s.tile_n + rel, s.block_size)
        base = cache.iterator + block * cache.layout.stride[0] + (row - rel) * row_stride
        tile = cute.make_tensor(base, cute.make_layout((s.tile_n, cache.shape[2]), stride=(row_stride, 1)))
        return p.thr.partition_S(tile)[None, m, None]


@dataclass(frozen=True)
class PagedKVCache:
    """FlashAttention-compatible paged K/V cache with a compile-time ``block_size``."""

    block_size: int = 64
    name: str = "paged"

    def __post_init__(self):
        if self.block_size not in PAGED_BLOCK_SIZES:
            raise ValueError(f"block_size must be one of {PAGED_BLOCK_SIZES}, got {self.block_size}")

    @property
    def paged(self) -> bool:
        return True

    @property
    def seqlens(self) -> bool:
        return True

    def tiles(self, m: cute.Tensor, batch: Int32, kv_head: Int32, tile_n: int, head_dim: int,
              block_table: cute.Tensor | None = None) -> PagedSource:
        # (num_blocks, block_size, d) of this kv head; (max_blocks,) block ids of this sequence
        return PagedSource(m[None, None, kv_head, None], block_table[batch, None], tile_n, self.block_size)
