"""Row-gathered tiles: ``(rows, cols)`` tiles whose rows are not one strided run in global memory.

Two sources have such tiles: a paged KV cache (rows of a tile may sit in different blocks) and a PackGQA
query tile (row ``r`` is query token ``r // group`` of head ``head0 + r % group``). A source implements
``rows_view(n, rel)``: a ``(rows, cols)`` tensor in which tile row ``rel`` of tile ``n`` sits at its
physical address. A gmem iterator partitions a source into a :class:`GatherPart`; indexing that part
yields :class:`GatherTile`, whose row group ``m`` is the thread's slice of the view for its own row of
that group. So one address computation per row group and tile, and the copies stay 16-byte vectors.

A source whose addresses need a read (a paged cache's block table) may also split ``rows_view`` into
``lookup(n, rel)`` (the read) and ``view_at(n, rel, key)`` (the view from what it read): a mainloop can then
issue the reads a load ahead (:meth:`GatherPart.lookup`) and index the tile with them later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32


@dataclass(frozen=True)
class GatherPart:
    """A thread's view of a row source: ``part[None, None, None, n]`` is tile ``n``; ``part[None, m, None]``
    is row group ``m`` of a source with a single tile."""

    src: Any
    thr: Any  # the thread's slice of the gmem iterator's tiled copy
    row0: Any  # this thread's first row inside the tile
    t0_rows: Any  # compile-time first rows of thread 0's row groups

    def __getitem__(self, idx):
        if len(idx) == 4:
            return GatherTile(self, idx[3])
        return GatherTile(self, None)[idx]

    @property
    def has_lookup(self) -> bool:
        """Whether the source's addresses need reads that :meth:`lookup` can issue ahead (a paged cache)."""
        return hasattr(self.src, "lookup")

    @cute.jit
    def lookup_row(self, m: cutlass.Constexpr, n, row_limit, tile_rows: cutlass.Constexpr):
        """Tile row that row group ``m``'s lookup reads: the thread's own, or logical row 0 of the sequence when
        it is at or past ``row_limit`` (its copy is predicated off, and no read leaves the table's row)."""
        rel = self.row0 + self.t0_rows[m]
        return rel if rel < row_limit else -n * tile_rows

    def make_keys(self) -> cute.Tensor:
        """(CPY_ROWS,) registers for one tile's address reads (:meth:`lookup`)."""
        return cute.make_rmem_tensor((len(self.t0_rows),), Int32)

    @cute.jit
    def lookup(self, n, row_limit, tile_rows: cutlass.Constexpr, keys: cute.Tensor):
        """Issue the source's address reads of tile ``n`` into ``keys`` (registers, one per row group); they
        stay in flight until :meth:`located` indexes the tile with them."""
        for m in cutlass.range_constexpr(len(self.t0_rows)):
            keys[m] = self.src.lookup(n, self.lookup_row(m, n, row_limit, tile_rows))

    def located(self, n, row_limit, tile_rows: int, keys: cute.Tensor) -> GatherTile:
        """Tile ``n`` from the reads :meth:`lookup` issued for it (same ``row_limit``)."""
        return GatherTile(self, n, keys, row_limit, tile_rows)


@dataclass(frozen=True)
class GatherTile:
    """Tile ``n`` of a row source; ``tile[None, m, None]``: the thread's ``(CPY, CPY_COLS)`` view of row group ``m``.
    With ``keys`` the source's address reads were issued earlier (:meth:`GatherPart.lookup`)."""

    part: GatherPart
    n: Any
    keys: Any = None
    row_limit: Any = None
    tile_rows: int = 0

    def __getitem__(self, idx):
        return self.rows(idx[1])

    @cute.jit
    def rows(self, m: cutlass.Constexpr):
        p = self.part
        if cutlass.const_expr(self.keys is None):
            view = p.src.rows_view(self.n, p.row0 + p.t0_rows[m])
        else:
            view = p.src.view_at(self.n, p.lookup_row(m, self.n, self.row_limit, self.tile_rows), self.keys[m])
        return p.thr.partition_S(view)[None, m, None]


def row_view(ptr: cute.Pointer, rows: int, cols: int) -> cute.Tensor:
    """A ``(rows, cols)`` view in which every row is the one at ``ptr`` (row stride 0)."""
    return cute.make_tensor(ptr, cute.make_layout((rows, cols), stride=(0, 1)))


@dataclass(frozen=True)
class PackedRows:
    """PackGQA rows of one (batch, KV head): tile row ``r`` of the tile at ``row_start`` is token
    ``(row_start + r) // group`` of query head ``head0 + (row_start + r) % group``.

    ``m3`` is ``(seqlen_q, nheads, d)`` (Q or O of one batch) or ``(seqlen_q, nheads)`` (the LSE of one batch,
    transposed view); ``rows``/``cols`` are the tile's extent.
    """

    m3: Any
    row_start: Any
    group: Any
    head0: Any
    rows: int
    cols: int

    def coords(self, rel: Int32) -> tuple[Int32, Int32]:
        """(token, head) of tile row ``rel``."""
        r = self.row_start + rel
        return r // self.group, self.head0 + r % self.group

    @cute.jit
    def rows_view(self, n, rel: Int32) -> cute.Tensor:
        token, head = self.coords(rel)
        return row_view(self.m3[token, head, None].iterator, self.rows, self.cols)
