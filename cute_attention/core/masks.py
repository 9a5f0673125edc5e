"""Masks applied to a tile of raw scores, in the three phases of the mainloop.

Which bounds exist is a compile-time choice (:class:`MaskSpec`); the window sizes and sequence
lengths are runtime values. Visibility follows :func:`cute_attention.core.index_math.key_visible`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32, Uint32
from cutlass._mlir.dialects import llvm
from cutlass.cutlass_dsl import T

from cute_attention.core.index_math import imax, imin

BITMASK_CHUNK = 32  # a thread's scores of one row are hidden by 32-bit masks, one per 32 of them


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


def pair_columns_below(limit, pairs: int):
    """How many of the columns ``8·j + e`` (``j < pairs``, ``e < 2``: a warpgroup-MMA accumulator's columns of one
    thread, relative to its first) lie below ``limit`` (Python or DSL integers)."""
    lim = imax(imin(limit, 8 * pairs), 0)
    return 2 * (lim >> 3) + imin(lim & 7, 2)


def shr_u32(val, shift) -> Uint32:
    """``val >> shift`` by PTX ``shr.u32``, which gives 0 for shifts of 32 and more (an LLVM shift by the width is
    undefined)."""
    return Uint32(llvm.inline_asm(T.i32(), [Uint32(val).ir_value(), Uint32(shift).ir_value()], "shr.u32 $0, $1, $2;",
                                  "=r,r,r", has_side_effects=False, is_align_stack=False,
                                  asm_dialect=llvm.AsmDialect.AD_ATT))


def below_shift(count, chunk: int):
    """The shift of an all-ones 32-bit word that leaves bit ``i`` set where score ``chunk·32 + i`` is among the
    first ``count`` (``count >= 0``; 32 or more: none, as ``shr.u32`` gives)."""
    return imax(BITMASK_CHUNK * (chunk + 1) - count, 0)


def bits_below(count, chunk: int) -> Uint32:
    """Bit ``i`` set where score ``chunk·32 + i`` is among the first ``count`` (``count >= 0``)."""
    return shr_u32(Uint32(0xFFFFFFFF), below_shift(count, chunk))


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
    count_below: cutlass.Constexpr[Callable | None] = None,
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

    ``count_below(limit)``: how many of thread 0's columns lie below ``limit`` (the Impl's closed form, checked
    here against those columns). With it a row's limits become 32-bit masks, one per 32 scores, and each score is
    kept or hidden by one bit of a mask (ptxas turns the bit tests into R2P: 8 instructions for 64 scores instead
    of a compare per score).
    """
    if cutlass.const_expr(count_below is not None):
        apply_mask_bits(acc_S_mn, tScS_mn, t0ScS_mn, row_base, col_base, seqlen_q, seqlen_k, window_left,
                        window_right, mask, group, count_below)
        return
    col_start = col_base + tScS_mn[0, 0][1] - t0ScS_mn[0, 0][1]
    for r in cutlass.range_constexpr(cute.size(acc_S_mn.shape[0])):
        lo, hi = row_limits(tScS_mn, r, row_base, col_start, seqlen_q, seqlen_k, window_left, window_right, mask,
                            group)
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


def check_count_below(count_below: Callable, cols: list[int]) -> list[int]:
    """``cols`` (thread 0's columns, compile time), once seen ascending (a limit keeps a prefix of them) and
    counted right by ``count_below`` for every limit: a closed form that does not match the layout is refused while
    tracing."""
    if any(a >= b for a, b in zip(cols, cols[1:])):
        raise ValueError(f"columns {cols} are not ascending: a column limit keeps no prefix of them")
    for limit in range(-1, max(cols) + 2):
        if count_below(limit) != sum(col < limit for col in cols):
            raise ValueError(f"count_below({limit}) = {count_below(limit)} does not count the columns {cols}")
    return cols


@cute.jit
def row_limits(tScS_mn: cute.Tensor, r: cutlass.Constexpr, row_base: Int32, col_start: Int32, seqlen_q: Int32,
               seqlen_k: Int32, window_left: Int32, window_right: Int32, mask: cutlass.Constexpr, group):
    """Row ``r``'s visible columns relative to ``col_start``: ``[lo, hi)``."""
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
    return lo, hi


@cute.jit
def apply_mask_bits(acc_S_mn: cute.Tensor, tScS_mn: cute.Tensor, t0ScS_mn: cute.Tensor, row_base: Int32,
                    col_base: Int32, seqlen_q: Int32, seqlen_k: Int32, window_left: Int32, window_right: Int32,
                    mask: cutlass.Constexpr, group, count_below: cutlass.Constexpr):
    """:func:`apply_mask` by 32-bit masks (``count_below``: see there)."""
    cols = check_count_below(count_below, [t0ScS_mn[0, c][1] for c in range(cute.size(acc_S_mn.shape[1]))])
    col_start = col_base + tScS_mn[0, 0][1] - t0ScS_mn[0, 0][1]
    for r in cutlass.range_constexpr(cute.size(acc_S_mn.shape[0])):
        lo, hi = row_limits(tScS_mn, r, row_base, col_start, seqlen_q, seqlen_k, window_left, window_right, mask,
                            group)
        keep_hi = count_below(hi)
        keep_lo = count_below(lo)
        for chunk in cutlass.range_constexpr(cute.ceil_div(len(cols), BITMASK_CHUNK)):
            bits = Uint32(0xFFFFFFFF)
            if cutlass.const_expr(mask.check_seqlen_k or mask.check_right):
                bits = bits_below(keep_hi, chunk)
            if cutlass.const_expr(mask.check_left):
                bits = bits & ~bits_below(keep_lo, chunk)
            # constant bit indices: ptxas moves the mask into predicates (R2P)
            for i in cutlass.range_constexpr(min(BITMASK_CHUNK, len(cols) - chunk * BITMASK_CHUNK)):
                c = chunk * BITMASK_CHUNK + i
                keep = cutlass.Boolean(bits & (Uint32(1) << i))
                acc_S_mn[r, c] = acc_S_mn[r, c] if keep else -Float32.inf
