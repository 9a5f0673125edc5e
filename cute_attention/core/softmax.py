"""Online softmax on raw scores in base 2 (TurboMind's / FlashAttention's formulation).

Scores stay raw; ``qk_scale = softmax_scale * log2(e)`` and ``P = exp2(S * qk_scale - M * qk_scale)``.
A row whose running max is still ``-inf`` (nothing visible yet) uses 0 as its offset, so its
``P`` is exactly 0 and it ends as an all-zero output row with ``LSE = -inf``.

Works on any accumulator that an Impl can view as ``(rows, cols)`` per thread; the lanes that share a
row are reached by the butterfly offsets ``row_lanes`` ((2, 1): four consecutive lanes, m16n8 families).
"""

from __future__ import annotations

import math

import cutlass
import cutlass.cute as cute
from cutlass import Float32

LN2 = math.log(2.0)
LOG2_E = math.log2(math.e)


def row_allreduce(val: Float32, op: str, lanes: tuple[int, ...]) -> Float32:
    """Reduce over the lanes reached by the butterfly (xor) offsets ``lanes``."""
    for offset in lanes:
        other = cute.arch.shuffle_sync_bfly(val, offset=offset, mask=-1, mask_and_clamp=31)
        val = cute.arch.fmax(val, other) if op == "max" else val + other
    return val


class OnlineSoftmax:
    """Per-thread running max ``M`` and (lane-partial) running sum ``L`` of its rows.

    With ``rescale_threshold`` (log2 units) ``M`` is raised, and ``O``, ``L`` rescaled, only when some
    row of the warp grew by more than the threshold: otherwise the stale ``M`` is kept, so ``P`` stays
    below ``2**threshold`` (exact in fp32 accumulators, fine for fp16/bf16 P) and most tiles skip the
    rescale of O. ``M`` and ``L`` always stay consistent, so the result and the LSE are unchanged.
    """

    def __init__(self, scale_log2: Float32, num_rows: int, row_lanes: tuple[int, ...] = (2, 1),
                 rescale_threshold: float | None = None):
        self.scale_log2 = scale_log2
        self.num_rows = num_rows
        self.row_lanes = row_lanes
        self.rescale_threshold = rescale_threshold
        self.row_max = cute.make_rmem_tensor((num_rows,), Float32)
        self.row_sum = cute.make_rmem_tensor((num_rows,), Float32)
        self.row_max.fill(-Float32.inf)
        self.row_sum.fill(0.0)

    @cute.jit
    def update(self, acc_S_mn: cute.Tensor, acc_O_mn: cute.Tensor, is_first: cutlass.Constexpr):
        """Turn the scores of one KV tile into ``P`` in place and rescale ``acc_O``."""
        if cutlass.const_expr(self.rescale_threshold is None or is_first):
            self.update_eager(acc_S_mn, acc_O_mn, is_first)
        else:
            self.update_lazy(acc_S_mn, acc_O_mn)

    @cute.jit
    def update_lazy(self, acc_S_mn: cute.Tensor, acc_O_mn: cute.Tensor):
        row_max = self.row_max
        row_sum = self.row_sum
        tile_max = cute.make_rmem_tensor((self.num_rows,), Float32)
        grows = False
        for r in cutlass.range_constexpr(self.num_rows):
            m = acc_S_mn[r, None].load().reduce(cute.ReductionOp.MAX, -Float32.inf, 0)
            tile_max[r] = row_allreduce(m, "max", self.row_lanes)
            # (x - -inf) is +inf: a row's first visible scores always trigger the rescale
            grows = grows or (tile_max[r] - row_max[r]) * self.scale_log2 > self.rescale_threshold
        if cute.arch.vote_any_sync(grows):
            for r in cutlass.range_constexpr(self.num_rows):
                new_max = cute.arch.fmax(row_max[r], tile_max[r])
                safe = 0.0 if new_max == -Float32.inf else new_max
                alpha = cute.math.exp2((row_max[r] - safe) * self.scale_log2, fastmath=True)
                row_max[r] = new_max
                row_sum[r] = row_sum[r] * alpha
                acc_O_mn[r, None].store(acc_O_mn[r, None].load() * alpha)
        for r in cutlass.range_constexpr(self.num_rows):
            safe = 0.0 if row_max[r] == -Float32.inf else row_max[r]
            p = cute.math.exp2(acc_S_mn[r, None].load() * self.scale_log2 - safe * self.scale_log2, fastmath=True)
            acc_S_mn[r, None].store(p)
            row_sum[r] = row_sum[r] + p.reduce(cute.ReductionOp.ADD, Float32.zero, 0)

    @cute.jit
    def update_eager(self, acc_S_mn: cute.Tensor, acc_O_mn: cute.Tensor, is_first: cutlass.Constexpr):
        for r in cutlass.range_constexpr(self.num_rows):
            row = acc_S_mn[r, None].load()
            tile_max = row.reduce(cute.ReductionOp.MAX, -Float32.inf, 0)
            tile_max = row_allreduce(tile_max, "max", self.row_lanes)
            prev_max = self.row_max[r]
            new_max = cute.arch.fmax(prev_max, tile_max)
            self.row_max[r] = new_max
            safe_max = 0.0 if new_max == -Float32.inf else new_max
            offset = safe_max * self.scale_log2
            p = cute.math.exp2(row * self.scale_log2 - offset, fastmath=True)
            acc_S_mn[r, None].store(p)
            tile_sum = p.reduce(cute.ReductionOp.ADD, Float32.zero, 0)
            if cutlass.const_expr(is_first):
                self.row_sum[r] = tile_sum
            else:
                # prev_max is -inf only while the row has seen nothing: its sum and acc_O are 0.
                alpha = cute.math.exp2(prev_max * self.scale_log2 - offset, fastmath=True)
                self.row_sum[r] = self.row_sum[r] * alpha + tile_sum
                acc_O_mn[r, None].store(acc_O_mn[r, None].load() * alpha)

    @cute.jit
    def update_deferred(self, acc_S_mn: cute.Tensor, is_first: cutlass.Constexpr) -> cute.Tensor:
        """:meth:`update_eager` without touching O: turn the scores into ``P`` in place and return each row's
        factor for O (``exp2((M_old − M_new)·s)``; 1 on the first tile). A pipeline whose P·V of the previous tile
        is still in flight applies it with :meth:`rescale` once that product landed."""
        alpha = cute.make_rmem_tensor((self.num_rows,), Float32)
        for r in cutlass.range_constexpr(self.num_rows):
            row = acc_S_mn[r, None].load()
            tile_max = row_allreduce(row.reduce(cute.ReductionOp.MAX, -Float32.inf, 0), "max", self.row_lanes)
            prev_max = self.row_max[r]
            new_max = cute.arch.fmax(prev_max, tile_max)
            self.row_max[r] = new_max
            offset = (0.0 if new_max == -Float32.inf else new_max) * self.scale_log2
            p = cute.math.exp2(row * self.scale_log2 - offset, fastmath=True)
            acc_S_mn[r, None].store(p)
            tile_sum = p.reduce(cute.ReductionOp.ADD, Float32.zero, 0)
            if cutlass.const_expr(is_first):
                self.row_sum[r] = tile_sum
                alpha[r] = 1.0
            else:
                alpha[r] = cute.math.exp2(prev_max * self.scale_log2 - offset, fastmath=True)
                self.row_sum[r] = self.row_sum[r] * alpha[r] + tile_sum
        return alpha

    @cute.jit
    def rescale(self, acc_O_mn: cute.Tensor, alpha: cute.Tensor):
        """``O *= alpha`` row by row (the factors :meth:`update_deferred` returned)."""
        for r in cutlass.range_constexpr(self.num_rows):
            acc_O_mn[r, None].store(acc_O_mn[r, None].load() * alpha[r])

    @cute.jit
    def reduce_sum(self):
        """Sum the lane-partial row sums across the lanes that share each row."""
        for r in cutlass.range_constexpr(self.num_rows):
            self.row_sum[r] = row_allreduce(self.row_sum[r], "sum", self.row_lanes)

    @cute.jit
    def finalize(self, acc_O_mn: cute.Tensor) -> cute.Tensor:
        """Normalize ``acc_O`` by ``L`` (0 for empty rows); return the natural-log LSE per row."""
        lse = cute.make_rmem_tensor((self.num_rows,), Float32)
        for r in cutlass.range_constexpr(self.num_rows):
            total = self.row_sum[r]
            empty = total == 0.0 or total != total
            inv = 0.0 if empty else cute.arch.rcp_approx(total)
            acc_O_mn[r, None].store(acc_O_mn[r, None].load() * inv)
            lse[r] = (
                -Float32.inf
                if empty
                else (self.row_max[r] * self.scale_log2 + cute.math.log2(total, fastmath=True)) * LN2
            )
        return lse
