"""A paged K/V cache (FlashAttention's ``(num_blocks, block_size, nheads_kv, d)`` + block table), TurboMind's
``BlockIteratorFactory``.

Logical row ``t`` of sequence ``b`` lives at row ``t % block_size`` of block ``block_table[b, t // block_size]``
(:func:`~cute_attention.core.index_math.paged_slot`, the one rule every reader and writer uses). The attention
mainloop sees a sequence's K or V as a row source (:class:`PagedSource`): its tile rows are located through the
table, once per tile when a block holds whole tiles, else once per row group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass.cute as cute
from cutlass import Int32

from cute_attention.core.index_math import paged_slot

PAGED_BLOCK_SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class PagedSource:
    """One sequence's K or V in a paged cache, a row source: ``cache`` (num_blocks, block_size, d) of one KV head
    and the sequence's ``table`` row (max_blocks,)."""

    cache: Any
    table: Any
    tile_n: int
    block_size: int
    reads = True  # locating a row reads the block table: a mainloop may issue it a load ahead

    def anchor(self, rel):
        """The tile row whose block the view is built on: row 0 when the whole tile lies in one block (one table
        read per tile), else the row itself."""
        return 0 if self.block_size >= self.tile_n else rel

    @cute.jit
    def locate(self, n: Int32, rel: Int32):
        """The block-table read for row ``rel`` of tile ``n``: the physical block that holds it."""
        block, _ = paged_slot(self.table, n * self.tile_n + self.anchor(rel), self.block_size)
        return block

    @cute.jit
    def view(self, n: Int32, rel: Int32, block) -> cute.Tensor:
        """A ``(tile_n, d)`` view whose row ``rel`` sits at the physical row of logical token ``n * tile_n + rel``
        (in ``block``, what :meth:`locate` read): a linear tile layout over a shifted base pointer."""
        cache = self.cache
        row_stride = cache.layout.stride[1]
        rel = self.anchor(rel)
        row = (n * self.tile_n + rel) % self.block_size
        base = cache.iterator + block * cache.layout.stride[0] + (row - rel) * row_stride
        return cute.make_tensor(base, cute.make_layout((self.tile_n, cache.shape[2]), stride=(row_stride, 1)))


@dataclass(frozen=True)
class PagedKVCache:
    """FlashAttention-compatible paged K/V cache with a compile-time ``block_size``; lengths always come from
    ``cache_seqlens``."""

    block_size: int = 64
    name: str = "paged"
    paged = True  # tiles() returns a row source; the kernel takes a block table
    seqlens = True

    def __post_init__(self):
        if self.block_size not in PAGED_BLOCK_SIZES:
            raise ValueError(f"block_size must be one of {PAGED_BLOCK_SIZES}, got {self.block_size}")

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
