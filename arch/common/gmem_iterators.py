"""Global→shared tile movers (TurboMind's ``BaseGmemIterator`` family).

One interface for every pipeline strategy: ``partition`` once per CTA, then per tile either
``prefetch`` (:class:`CpAsyncGmemIterator`: asynchronous copy straight into a shared-memory slot, TurboMind's
``Sm80GmemIterator``) or ``load`` into a register fragment followed later by ``save`` to shared memory
(:class:`RegisterGmemIterator`, TurboMind's ``Sm70GmemIterator``; also the prologue slot's path for Q). Rows past
the end of the sequence are written as zeros instead (TurboMind's ``ClearSmem``): a NaN left in V would survive
``0 · NaN``.

Rows are predicated per 16-byte vector row group; columns never are (head dims are whole tiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32
from cutlass.cute.nvgpu import cpasync

from cute_attention.arch.common.thread_map import ACCESS_BITS, ThreadMap
from cute_attention.kv.row_source import RowSourcePartition


@dataclass(frozen=True)
class CopyPartition:
    """One thread's share of a tiled copy (CuTe naming: tXgX source, tXsX destination)."""

    src: Any  # (CPY, CPY_ROWS, CPY_COLS, tiles) global-memory view, or (CPY, CPY_ROWS, CPY_COLS), or a row source's
    dst: Any  # (CPY, CPY_ROWS, CPY_COLS, slot) shared-memory view, or (CPY, CPY_ROWS, CPY_COLS), or a row source's
    row0: Any  # this thread's first row inside the tile
    t0_rows: Any  # (CPY_ROWS,) compile-time first rows of thread 0's row groups
    coords: Any = None  # (CPY, CPY_ROWS, CPY_COLS) this thread's (row, col) tile coordinates
    gathered: bool = False  # src is a row source: copies go row group by row group
    source_reads: bool = False  # ... whose rows are located by memory reads (a paged cache's block table)


class GmemIterator:
    """Base: the thread map and partitioning; subclasses choose the copy instruction."""

    def __init__(self, dtype: type[cutlass.Numeric], rows: int, cols: int, threads: int,
                 access_bits: int = ACCESS_BITS):
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.access_bits = access_bits
        self.thread_map = ThreadMap(threads, cols, dtype.width, access_bits)

    def copy_atom(self) -> cute.CopyAtom:
        raise NotImplementedError

    def tiled_copy(self) -> cute.TiledCopy:
        return self.thread_map.tiled_copy(self.copy_atom())

    @cute.jit
    def partition(self, tidx: Int32, src, dst, src_rows: cutlass.Constexpr = False,
                  dst_rows: cutlass.Constexpr = False) -> CopyPartition:
        """Partition a source and a destination, each a ``(rows, cols[, tiles or slots])`` view or, as the caller
        declares with ``src_rows`` / ``dst_rows``, a row source (:mod:`cute_attention.kv.row_source`)."""
        tiled = self.tiled_copy()
        thr = tiled.get_slice(tidx)
        c = cute.make_identity_tensor((self.rows, self.cols))
        tXcX = thr.partition_S(c)
        t0XcX = tiled.get_slice(0).partition_S(c)
        t0_rows = [t0XcX[0, m, 0][0] for m in range(cute.size(tXcX.shape[1]))]
        row0 = tXcX[0][0]
        source_reads = False
        if cutlass.const_expr(src_rows):
            src_part = RowSourcePartition(src, thr, row0, t0_rows)
            source_reads = src.reads
        else:
            src_part = thr.partition_S(src)
        if cutlass.const_expr(dst_rows):
            dst_part = RowSourcePartition(dst, thr, row0, t0_rows)
        else:
            dst_part = thr.partition_D(dst)
        return CopyPartition(src=src_part, dst=dst_part, row0=row0, t0_rows=t0_rows, coords=tXcX, gathered=src_rows,
                             source_reads=source_reads)


    @cute.jit
    def copy_tile(self, part: CopyPartition, src, dst: cute.Tensor, row_limit: Int32,
                  predicate_rows: cutlass.Constexpr):
        """Copy one tile ``src`` -> ``dst`` (each ``(CPY, ROWS, COLS)``) with this iterator's copy atom, row group by
        row group when rows are predicated (those at or past ``row_limit`` get zeros) or gathered from a row
        source, else in one tiled copy."""
        tiled = self.tiled_copy()
        if cutlass.const_expr(predicate_rows):
            for m in cutlass.range_constexpr(cute.size(dst.shape[1])):
                if part.t0_rows[m] < row_limit - part.row0:
                    cute.copy(tiled, src[None, m, None], dst[None, m, None])
                else:
                    dst[None, m, None].fill(0)
        elif cutlass.const_expr(part.gathered):
            for m in cutlass.range_constexpr(cute.size(dst.shape[1])):
                cute.copy(tiled, src[None, m, None], dst[None, m, None])
        else:
            cute.copy(tiled, src, dst)


class CpAsyncGmemIterator(GmemIterator):
    """``cp.async`` copies (LDGSTS) of 16 bytes bypassing L1 (4 or 8 bytes, which only the L1-allocating form
    moves, for narrow rows); rows past the limit are zero-filled."""

    def copy_atom(self) -> cute.CopyAtom:
        mode = cpasync.LoadCacheMode.GLOBAL if self.access_bits == ACCESS_BITS else cpasync.LoadCacheMode.ALWAYS
        return cute.make_copy_atom(cpasync.CopyG2SOp(cache_mode=mode), self.dtype, num_bits_per_copy=self.access_bits)

    @cute.jit
    def prefetch(self, part: CopyPartition, src: cute.Tensor, dst: cute.Tensor,
                 row_limit: Int32, predicate_rows: cutlass.Constexpr):
        """Issue the copies of one tile (``src``/``dst`` already indexed to ``(CPY, ROWS, COLS)``)."""
        self.copy_tile(part, src, dst, row_limit, predicate_rows)


class RegisterGmemIterator(GmemIterator):
    """Synchronous 16-byte copies staged in registers (LDG.128, later STS.128): no cp.async.

    ``load`` starts a tile's global reads into a register fragment (rows past the limit become zeros,
    TurboMind's ``ClearSmem``); ``save`` writes the fragment to a shared-memory slot. Between the two the
    loads are in flight, so the caller puts compute there.
    """

    def copy_atom(self) -> cute.CopyAtom:
        return cute.make_copy_atom(cute.nvgpu.CopyUniversalOp(), self.dtype, num_bits_per_copy=self.access_bits)

    def make_fragment(self, part: CopyPartition) -> cute.Tensor:
        """(CPY, CPY_ROWS, CPY_COLS) register staging buffer for one tile."""
        return cute.make_rmem_tensor(tuple(part.dst.shape[:3]), self.dtype)

    @cute.jit
    def load(self, part: CopyPartition, src: cute.Tensor, frag: cute.Tensor, row_limit: Int32,
             predicate_rows: cutlass.Constexpr):
        """Start one tile's global reads into the register fragment ``frag``."""
        self.copy_tile(part, src, frag, row_limit, predicate_rows)

    @cute.jit
    def save(self, frag: cute.Tensor, dst: cute.Tensor):
        cute.copy(self.tiled_copy(), frag, dst)


class StoreIterator(GmemIterator):
    """Shared→global 16-byte stores of the output tile, rows past the limit skipped."""

    def copy_atom(self) -> cute.CopyAtom:
        return cute.make_copy_atom(cute.nvgpu.CopyUniversalOp(), self.dtype, num_bits_per_copy=ACCESS_BITS)

    @cute.jit
    def store(self, part: CopyPartition, row_limit: Int32):
        """``part.src`` is the shared tile, ``part.dst`` the global one."""
        tiled = self.tiled_copy()
        rO = cute.make_fragment_like(part.src, self.dtype)
        cute.autovec_copy(part.src, rO)
        for m in cutlass.range_constexpr(cute.size(rO.shape[1])):
            if part.t0_rows[m] < row_limit - part.row0:
                cute.copy(tiled, rO[None, m, None], part.dst[None, m, None])
