"""Masks applied to a tile of raw scores, in the three phases of the mainloop.

Which bounds exist is a compile-time choice (:class:`MaskSpec`); the window sizes and sequence
lengths are runtime values. Visibility follows :func:`cute_attention.core.index_math.key_visible`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32


@dataclass(frozen=True)
class MaskSpec:
    """Which bounds the kernel was compiled with (``causal`` is ``has_right`` with ``right = 0``)."""

    has_left: bool = False
    has_right: bool = False


@dataclass(frozen=True)
class TileMask:
    """The checks one phase needs: back tiles check ``seqlen_k`` and both bounds, front tiles only the left."""

    check_seqlen_k: bool
    check_right: bool
    check_left: bool

    @staticmethod
    def back(spec: MaskSpec) -> TileMask:
        return TileMask(True, spec.has_right, spec.has_left)

    @staticmethod
    def front(spec: MaskSpec) -> TileMask:
        return TileMask(False, False, spec.has_left)


@cute.jit
def apply_mask(
    acc_S_mn: cute.Tensor,
    tScS_mn: cute.Tensor,
    t0ScS_mn: cute.Tensor,
    row_base: Int32,
    col_base: Int32,
    seqlen_q: Int32,
    seqlen_k: Int32,
    window_left: Int32,
    window_right: Int32,
    mask: cutlass.Constexpr,
    group=1,
    by_select: cutlass.Constexpr = False,
):
    """Set hidden scores of one ``(rows, cols)`` thread view to ``-inf``.

    ``group``: 1, or (PackGQA) the number of query heads packed into the rows: tile row ``row_base + r``
    is then query token ``(row_base + r) // group``.

    ``by_select``: write every score through a select (one FSEL per score) instead of a conditional store. In the
    warpgroup-MMA kernels the conditional stores compiled into chains of about 15 FSELs per score and spilled; the
    select form cuts a masked step there from 2,248 to 539 instructions. In the register-bound mma.sync tiles
    (255 registers) the select form spilled more instead (``sm80_m128n64_s4_lazy`` d128: 4 → 53), so they keep
    the conditional store until the GPU times both (docs/benchmarks.md).

    ``tScS_mn`` holds this thread's (row, col) tile coordinates, ``t0ScS_mn`` thread 0's, whose
    columns are compile-time constants: comparing them with per-row limits shifted by this
    thread's column offset keeps the inner loop free of index arithmetic.
    """
    col_offset = tScS_mn[0, 0][1] - t0ScS_mn[0, 0][1]
    col_start = col_base + col_offset
    for r in cutlass.range_constexpr(cute.size(acc_S_mn.shape[0])):
        if cutlass.const_expr(isinstance(group, int) and group == 1):
            pos = row_base + tScS_mn[r, 0][0] + seqlen_k - seqlen_q
        else:
            pos = (row_base + tScS_mn[r, 0][0]) // group + seqlen_k - seqlen_q
        hi = Int32(2**30)
        lo = Int32(-(2**30))
        if cutlass.const_expr(mask.check_seqlen_k):
            hi = seqlen_k - col_start
        if cutlass.const_expr(mask.check_right):
            hi = cutlass.min(hi, pos + window_right + 1 - col_start)
        if cutlass.const_expr(mask.check_left):
            lo = pos - window_left - col_start
        for c in cutlass.range_constexpr(cute.size(acc_S_mn.shape[1])):
            col = t0ScS_mn[0, c][1]
            hidden = False
            if cutlass.const_expr(mask.check_seqlen_k or mask.check_right):
                hidden = col >= hi
            if cutlass.const_expr(mask.check_left):
                hidden = hidden or col < lo
            if cutlass.const_expr(by_select):
                acc_S_mn[r, c] = -Float32.inf if hidden else acc_S_mn[r, c]
            else:
                if hidden:
                    acc_S_mn[r, c] = -Float32.inf
