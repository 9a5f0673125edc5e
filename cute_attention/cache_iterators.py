"""Cache iterator factories: where the K/V tiles of one (batch, kv head) come from.

TurboMind's ``LinearIteratorFactory`` / ``BlockIteratorFactory``. The mainloop asks the factory for
the tiles of one sequence and indexes them by tile; the gmem iterator then takes each of its row
groups from that tile (for a paged cache through :mod:`cute_attention.row_gather`):

* ``LinearKVCache``: contiguous ``(batch, seqlen_k, nheads_kv, d)``; ``seqlens=True`` reads each
  sequence's length from ``cache_seqlens`` instead of the tensor's extent (a KV cache with room left).
* ``PagedKVCache(block_size)``: FlashAttention's paged cache ``(num_blocks, block_size, nheads_kv, d)``
  with ``block_table (batch, max_blocks)`` int32: logical row ``t`` of a sequence lives in block
  ``block_table[b, t // block_size]`` at row ``t % block_size`` (``index_math.paged_slot``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    @staticmethod
    def capacity(m, block_table=None):
        """Tokens one sequence can hold (torch or DSL tensors)."""
        return m.shape[1]

    @staticmethod
    def token_row(m: cute.Tensor, block_table: cute.Tensor | None, batch: Int32, token: Int32) -> cute.Tensor:
        """``(nheads_kv, d)`` slot of logical token ``token`` of sequence ``batch``."""
        return m[batch, token, None, None]


@dataclass(frozen=True)
class PagedSource:
    """One sequence's K or V in a paged cache: ``cache`` (num_blocks, block_size, d) of one kv head and
    the sequence's ``table`` row (max_blocks,). A row source (:mod:`cute_attention.row_gather`)."""

    cache: Any
    table: Any
    tile_n: int
    block_size: int

    @cute.jit
    def rows_view(self, n: Int32, rel: Int32) -> cute.Tensor:
        """A ``(tile_n, d)`` view whose row ``rel`` sits at the physical row of logical token
        ``n * tile_n + rel``: a linear tile layout over a shifted base pointer."""
        return self.view_at(n, rel, self.lookup(n, rel))

    def anchor(self, rel):
        """The tile row whose block the view is built on: row 0 when the whole tile lies in one block (one table
        read per tile), else the row itself."""
        return 0 if self.block_size >= self.tile_n else rel

    @cute.jit
    def lookup(self, n: Int32, rel: Int32):
        """The block-table read behind :meth:`rows_view` (split out so a mainloop can issue it early)."""
        block, _ = paged_slot(self.table, n * self.tile_n + self.anchor(rel), self.block_size)
        return block

    @cute.jit
    def view_at(self, n: Int32, rel: Int32, block) -> cute.Tensor:
        """:meth:`rows_view` given the block :meth:`lookup` read."""
        cache = self.cache
        row_stride = cache.layout.stride[1]
        rel = self.anchor(rel)
        row = (n * self.tile_n + rel) % self.block_size
        base = cache.iterator + block * cache.layout.stride[0] + (row - rel) * row_stride
        return cute.make_tensor(base, cute.make_layout((self.tile_n, cache.shape[2]), stride=(row_stride, 1)))


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

    def capacity(self, m, block_table):
        """Tokens one sequence can hold: its block-table row's blocks (torch or DSL tensors)."""
        return block_table.shape[1] * self.block_size

    def token_row(self, m: cute.Tensor, block_table: cute.Tensor, batch: Int32, token: Int32) -> cute.Tensor:
        """``(nheads_kv, d)`` slot of logical token ``token`` of sequence ``batch`` (one block-table read)."""
        block, row = paged_slot(block_table[batch, None], token, self.block_size)
        return m[block, row, None, None]
