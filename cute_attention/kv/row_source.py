"""Row sources: ``(rows, cols)`` tiles whose rows are not one strided run in global memory.

Two kinds of tile have such rows: a paged KV cache's (the rows of a tile may sit in different blocks) and a
PackGQA tile of Q or O (row ``r`` is query token ``r // group`` of head ``head0 + r % group``). A row source
(:class:`~cute_attention.core.contracts.RowSource`) answers two questions for row ``rel`` of tile ``n``:
``locate(n, rel)``, the memory reads its address needs (a paged cache's block-table entry; none for PackGQA rows),
and ``view(n, rel, key)``, a ``(rows, cols)`` tensor in which that row sits at its physical address, built from
what ``locate`` read. A source declares ``reads`` when ``locate`` reads memory, so a mainloop may issue those
reads a load ahead.

A gmem iterator partitions a row source into a :class:`RowSourcePartition`; indexing it by tile gives a
:class:`RowSourceTile`, whose row group ``m`` is the thread's slice of the view built for the thread's own row of
that group: one address computation per row group and tile, and the copies stay 16-byte vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32


def row_view(ptr: cute.Pointer, rows: int, cols: int) -> cute.Tensor:
    """A ``(rows, cols)`` view in which every row is the one at ``ptr`` (row stride 0)."""
    return cute.make_tensor(ptr, cute.make_layout((rows, cols), stride=(0, 1)))


@dataclass(frozen=True)
class RowSourcePartition:
    """A thread's share of a row source: ``part[None, None, None, n]`` is tile ``n``; ``part[None, m, None]``
    is row group ``m`` of a source with a single tile (a Q or O tile)."""

    src: Any  # the row source
    thr: Any  # the thread's slice of the gmem iterator's tiled copy
    row0: Any  # this thread's first row inside the tile
    t0_rows: Any  # compile-time first rows of thread 0's row groups

    def __getitem__(self, idx):
        if len(idx) == 4:
            return RowSourceTile(self, idx[3])
        return RowSourceTile(self, None)[idx]

    @cute.jit
    def located_row(self, m: cutlass.Constexpr, n, row_limit, tile_rows: cutlass.Constexpr):
        """Tile row whose address row group ``m`` locates: the thread's own, or logical row 0 of the sequence when
        it is at or past ``row_limit`` (its copy is predicated off, and no read leaves the source)."""
        rel = self.row0 + self.t0_rows[m]
        return rel if rel < row_limit else -n * tile_rows

    def make_keys(self) -> cute.Tensor:
        """(CPY_ROWS,) registers for what one tile's :meth:`locate` reads."""
        return cute.make_rmem_tensor((len(self.t0_rows),), Int32)

    @cute.jit
    def locate(self, n, row_limit, tile_rows: cutlass.Constexpr, keys: cute.Tensor):
        """Issue the source's address reads of tile ``n`` into ``keys`` (registers, one per row group); they stay
        in flight until :meth:`located_tile` builds the tile from them."""
        for m in cutlass.range_constexpr(len(self.t0_rows)):
            keys[m] = self.src.locate(n, self.located_row(m, n, row_limit, tile_rows))

    def located_tile(self, n, row_limit, tile_rows: int, keys: cute.Tensor) -> RowSourceTile:
        """Tile ``n`` from the reads :meth:`locate` issued for it (same ``row_limit``)."""
        return RowSourceTile(self, n, keys, row_limit, tile_rows)


@dataclass(frozen=True)
class RowSourceTile:
    """Tile ``n`` of a row source; ``tile[None, m, None]``: the thread's ``(CPY, CPY_COLS)`` view of row group
    ``m``. With ``keys`` the source's address reads were issued earlier (:meth:`RowSourcePartition.locate`)."""

    part: RowSourcePartition
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
            rel = p.row0 + p.t0_rows[m]
            view = p.src.view(self.n, rel, p.src.locate(self.n, rel))
        else:
            view = p.src.view(self.n, p.located_row(m, self.n, self.row_limit, self.tile_rows), self.keys[m])
        return p.thr.partition_S(view)[None, m, None]
