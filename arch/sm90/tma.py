"""TMA movers (Hopper's bulk tensor copies): Q, K and V tiles global → shared memory, each copy completing on an
mbarrier's transaction count.

The host half (:meth:`TmaTiles.make`, inside the kernel object's ``@cute.jit`` launch) builds one TMA atom and
coordinate tensor per operand from the BSHD tensors; the device half (:meth:`TmaTiles.partition`) cuts them into
one CTA's tiles. A TMA copy is issued by one thread and needs no row predicates: rows past the tensor's end land
as zeros. A paged cache's tile is one copy from its block when a block holds whole tiles, else one copy per block
(:func:`~cute_attention.core.index_math.paged_box`). A varlen sequence's tiles start at its first packed row; rows
past its end are the next sequence's (or zeros), which the masks and the epilogue's row bounds keep out of the
result. Rows of a cache past a sequence's length hold anything: the kernel zeroes them in V's shared tile.
"""

from __future__ import annotations

from typing import NamedTuple

import cutlass
import cutlass.cute as cute
from cutlass.cute.nvgpu import cpasync


def seq_major(t: cute.Tensor) -> cute.Tensor:
    """A BSHD tensor viewed as ``(seqlen, d, heads, batch)``: the TMA tiler cuts the first two modes."""
    return cute.make_tensor(t.iterator, cute.select(t.layout, mode=[1, 3, 2, 0]))


class TmaOperand(NamedTuple):
    """One operand's TMA atom and the coordinate tensor its copies index, ``(seqlen, d, heads, batch)``."""

    atom: cute.CopyAtom
    coords: cute.Tensor


class TmaTilePartition(NamedTuple):
    """One CTA's view of an operand: ``src[None, tile]`` → ``dst[None, stage]`` per copy."""

    atom: cute.CopyAtom
    src: cute.Tensor  # (TMA, tiles)
    dst: cute.Tensor  # (TMA, stages)

    @cute.jit
    def copy(self, tile, stage, barrier):
        """Issue the copy of ``tile`` into ``stage``, completing on ``barrier`` (one thread issues it)."""
        cute.copy(self.atom, self.src[None, tile], self.dst[None, stage], tma_bar_ptr=barrier)


class TmaTiles:
    """TMA loads of ``(rows, head_dim)`` tiles of a BSHD tensor into a swizzled shared layout."""

    @staticmethod
    def make(m: cute.Tensor, smem_layout, rows: int, head_dim: int, box_rows: int | None = None) -> TmaOperand:
        """Host side: the atom for one stage of ``smem_layout`` ``(rows, head_dim, stages)`` and the coordinates.
        With ``box_rows`` < ``rows`` one copy moves a ``(box_rows, head_dim)`` box into rows of a stage (a paged
        cache's block smaller than the tile): the atom's shared layout is the first ``box_rows`` rows of the stage's,
        which every box of whole swizzle periods (16+ rows) shares."""
        stage = cute.select(smem_layout, mode=[0, 1])
        box_rows = rows if box_rows is None else box_rows
        if box_rows != rows:
            stage = cute.composition(stage, cute.make_layout((box_rows, head_dim), stride=(1, rows)))
        atom, coords = cpasync.make_tiled_tma_atom(cpasync.CopyBulkTensorTileG2SOp(), seq_major(m), stage,
                                                   (box_rows, head_dim))
        return TmaOperand(atom, coords)

    @staticmethod
    def make_store(m: cute.Tensor, smem_layout, rows: int, head_dim: int) -> TmaOperand:
        """Host side: a TMA store atom of ``(rows, head_dim)`` tiles from one stage of ``smem_layout`` into ``m``
        (rows past the tensor's end are not written)."""
        atom, coords = cpasync.make_tiled_tma_atom(cpasync.CopyBulkTensorTileS2GOp(), seq_major(m),
                                                   cute.select(smem_layout, mode=[0, 1]), (rows, head_dim))
        return TmaOperand(atom, coords)

    @staticmethod
    def bytes(dtype, rows: int, head_dim: int) -> int:
        """Bytes one tile's copy delivers (its mbarrier's transaction count)."""
        return rows * head_dim * dtype.width // 8

    @staticmethod
    @cute.jit
    def partition(op: TmaOperand, head, batch, s: cute.Tensor, rows: cutlass.Constexpr,
                  head_dim: cutlass.Constexpr, row_offset=0) -> TmaTilePartition:
        """``(rows, head_dim)`` tiles of (``head``, ``batch``) into ``s``: ``(rows, head_dim, stages)``; tile 0 starts
        at row ``row_offset`` (a varlen sequence's first row in the packed tensor)."""
        # (seqlen, head_dim) from row_offset on
        m = cute.domain_offset((row_offset, 0), op.coords[None, None, head, batch])
        # (rows, head_dim, tiles)
        g = cute.local_tile(m, (rows, head_dim), (None, 0))
        dst, src = cpasync.tma_partition(op.atom, 0, cute.make_layout(1), cute.group_modes(s, 0, 2),
                                         cute.group_modes(g, 0, 2))
        return TmaTilePartition(op.atom, src, dst)

    @staticmethod
    @cute.jit
    def copy_box(op: TmaOperand, head, block, box, s: cute.Tensor, stage, j, box_rows: cutlass.Constexpr,
                 head_dim: cutlass.Constexpr, barrier):
        """A paged cache's box ``box`` of block ``block`` (``head``) into box ``j`` of ``s[None, None, stage]``,
        completing on ``barrier`` (an atom made with ``box_rows``)."""
        # (box_rows, head_dim, boxes per block)
        g = cute.local_tile(op.coords[None, None, head, block], (box_rows, head_dim), (None, 0))
        # (box_rows, head_dim, boxes per tile)
        d = cute.local_tile(s[None, None, stage], (box_rows, head_dim), (None, 0))
        dst, src = cpasync.tma_partition(op.atom, 0, cute.make_layout(1), cute.group_modes(d, 0, 2),
                                         cute.group_modes(g, 0, 2))
        cute.copy(op.atom, src[None, box], dst[None, j], tma_bar_ptr=barrier)

    @staticmethod
    @cute.jit
    def store(op: TmaOperand, head, batch, s: cute.Tensor, tile, rows: cutlass.Constexpr,
              head_dim: cutlass.Constexpr):
        """Store ``s`` ``(rows, head_dim)`` as tile ``tile`` of (``head``, ``batch``) and wait until the copy has read
        shared memory (one thread; the caller made the tile visible to the async proxy first)."""
        # (rows, head_dim, tiles)
        g = cute.local_tile(op.coords[None, None, head, batch], (rows, head_dim), (None, 0))
        src, dst = cpasync.tma_partition(op.atom, 0, cute.make_layout(1), cute.group_modes(s, 0, 2),
                                         cute.group_modes(g, 0, 2))
        cute.copy(op.atom, src[None, 0], dst[None, tile])
        cute.arch.cp_async_bulk_commit_group()
        cute.arch.cp_async_bulk_wait_group(0, read=True)
