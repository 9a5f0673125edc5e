"""cp.async mover of a paged cache's KV tiles for the Hopper producer warp group: FlashAttention-3's path for
blocks smaller than a tile, beside the TMA movers of :mod:`cute_attention.arch.sm90.tma` (one TMA copy per block).

The producer warp group's threads cover a ``(tile_n, d)`` tile with 16-byte vectors (:class:`ThreadMap`), a row
group of ``rows_per_pass`` rows per pass. Row groups must lie in one block (their height divides the block size),
so for each tile a thread reads the few block-table entries the tile spans (the same ones in every thread, one L1
line) and every row group's block is known at compile time (:func:`paged_group_offset`): one address per row group,
no division. The copies complete on the slot's full barrier (each thread's ``cp.async.mbarrier.arrive.noinc``, the
pipeline's commit). Rows at or past the sequence's keys are not copied: their K scores are masked and the consumers
zero them in V (a cache's rows there hold anything anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.arch.common.gmem_iterators import CpAsyncGmemIterator
from cute_attention.core.index_math import paged_group_offset, paged_tile_start
from cute_attention.kv.row_source import row_view


class CpAsyncPartition(NamedTuple):
    """One producer thread's share of the ring: its slice of the tiled copy and ``(CPY, ROWS, COLS, stages)``."""

    thr: Any
    dst: Any
    row0: Any  # the thread's row in each row group
    t0_rows: list  # compile-time first rows of the row groups


@dataclass(frozen=True)
class PagedCpAsyncTiles:
    """``(tile_n, head_dim)`` tiles of one sequence's K or V in a paged cache, copied by ``threads`` threads."""

    dtype: Any
    tile_n: int
    head_dim: int
    block_size: int
    threads: int = 128

    @property
    def iterator(self) -> CpAsyncGmemIterator:
        return CpAsyncGmemIterator(self.dtype, self.tile_n, self.head_dim, self.threads)

    @property
    def rows_per_pass(self) -> int:
        return self.iterator.thread_map.rows_per_pass

    @property
    def entries_per_tile(self) -> int:
        return max(self.tile_n // self.block_size, 1)

    def why_not(self) -> str | None:
        rows = self.rows_per_pass
        if self.block_size % rows or self.tile_n % rows:
            return (f"cp.async row groups of {rows} rows (d{self.head_dim}) must divide blocks of {self.block_size} "
                    f"rows and tiles of {self.tile_n}")
        if self.block_size % self.tile_n and self.tile_n % self.block_size:
            return (f"paged blocks of {self.block_size} rows and KV tiles of {self.tile_n} rows: neither divides the "
                    "other")
        return None

    @cute.jit
    def partition(self, tidx: Int32, s: cute.Tensor) -> CpAsyncPartition:
        """``s``: the ring ``(tile_n, head_dim, stages)`` in shared memory."""
        tiled = self.iterator.tiled_copy()
        thr = tiled.get_slice(tidx)
        c = cute.make_identity_tensor((self.tile_n, self.head_dim))
        t0XcX = tiled.get_slice(0).partition_S(c)
        t0_rows = [t0XcX[0, m, 0][0] for m in range(cute.size(t0XcX.shape[1]))]
        return CpAsyncPartition(thr, thr.partition_D(s), thr.partition_S(c)[0][0], t0_rows)

    @cute.jit
    def copy(self, part: CpAsyncPartition, cache: cute.Tensor, table_row: cute.Tensor, n: Int32, seqlen_k: Int32,
             slot: Int32):
        """Issue this thread's copies of tile ``n`` into ring slot ``slot``: ``cache`` ``(num_blocks, block_size, d)``
        of one KV head, ``table_row`` the sequence's block ids (``seqlen_k >= 1``)."""
        tiled = self.iterator.tiled_copy()
        entry0, row_base = paged_tile_start(n, self.tile_n, self.block_size)
        # the tile's block ids; entries past the sequence's last block read that block (its rows are not copied)
        last = (seqlen_k - 1) // self.block_size
        blocks = cute.make_rmem_tensor((self.entries_per_tile,), Int32)
        for j in cutlass.range_constexpr(self.entries_per_tile):
            blocks[j] = table_row[cutlass.min(entry0 + j, last)]
        row_stride = cache.layout.stride[1]
        live = seqlen_k - n * self.tile_n - part.row0
        for m in cutlass.range_constexpr(len(part.t0_rows)):
            if part.t0_rows[m] < live:
                j, rows = paged_group_offset(part.t0_rows[m], self.tile_n, self.block_size)
                # the thread's row of row group m, seen as every row of a (tile_n, d) view: its slice is its vectors
                row = (cache.iterator + blocks[j] * cache.layout.stride[0]
                       + (row_base + rows + part.row0) * row_stride)
                src = part.thr.partition_S(row_view(row, self.tile_n, self.head_dim))
                cute.copy(tiled, src[None, m, None], part.dst[None, m, None, slot])
