"""Split-K reduction epilogue (TurboMind's ``invokeReduce``): merge the partial results of KV splits exactly.

Split ``i`` of a row wrote its normalized output ``O_i`` (fp32) and ``LSE_i`` (natural log; ``-inf`` when
the split saw no key). The merge is ``LSE = log Σ exp(LSE_i)`` and ``O = Σ exp(LSE_i − LSE)·O_i``: the
same result as one pass over all keys, up to fp32 rounding. One CTA merges one output row
``(batch, query, head)``. A small-batch decode waits on this kernel's dependent loads, so each phase issues
all its loads at once: every warp holds the first ``lse_slots · 32`` LSEs in registers (one load round, a
loop only past them), then warp ``w`` loads splits ``w, w + warps, ...`` over its lanes' ``head_dim / 32``
columns, ``unroll`` of them at once (branch-free: an index past the last split is clamped to it and weighted
0), and the warps' partial sums meet in shared memory. With 8 warps × 8 splits, up to 64 splits are merged in
one round of loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cutlass
import cutlass.cute as cute
from cutlass import Float32
from cutlass.memory import SmemAllocator

from cute_attention.core.softmax import LN2, LOG2_E, row_allreduce
from cute_attention.core.targets import has_pdl
from cute_attention.kernels.abi import DTYPES, KernelRecord, fake_bshd, fake_lse, fake_partial_o

WARP = 32
ALL_LANES = (16, 8, 4, 2, 1)


class ReduceArgs(NamedTuple):
    """The reduction kernel's arguments, in launch order."""

    mOp: cute.Tensor  # fp32 (splits, batch, seqlen_q, nheads, d)
    mLSEp: cute.Tensor  # fp32 (splits, batch, nheads, seqlen_q)
    mO: cute.Tensor  # (batch, seqlen_q, nheads, d)
    mLSE: cute.Tensor | None  # fp32 (batch, nheads, seqlen_q)


@dataclass(frozen=True)
class ReduceParams(KernelRecord):
    """The split-K reduction's launch configuration (compile-time only: the split count is the partials' extent)."""

    dtype: str
    head_dim: int
    with_lse: bool

    @property
    def label(self) -> str:
        return f"split-K reduction ({self.dtype}, d{self.head_dim})"

    def build(self, target: str) -> SplitReduce:
        return SplitReduce(DTYPES[self.dtype], self.head_dim, self.with_lse, pdl=has_pdl(target))

    def fake_args(self) -> tuple:
        return (ReduceArgs(fake_partial_o(self.head_dim), fake_lse(splits=True),
                           fake_bshd(DTYPES[self.dtype], self.head_dim), fake_lse() if self.with_lse else None),)

    @staticmethod
    def launch_args(o_part, lse_part, out, lse) -> tuple:
        return (ReduceArgs(o_part, lse_part, out, lse),)


class SplitReduce:
    """Kernel object: ``(O_part, LSE_part) -> (O, LSE)`` for one output dtype and head dim."""

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, with_lse: bool, warps: int = 8, unroll: int = 8,
                 lse_slots: int = 4, pdl: bool = False):
        if head_dim % WARP:
            raise ValueError(f"head_dim must be a multiple of {WARP}, got {head_dim}")
        self.dtype = dtype
        self.head_dim = head_dim
        self.with_lse = with_lse
        self.warps = warps
        self.unroll = unroll
        self.lse_slots = lse_slots
        # pairwise-sum order of the unrolled splits' products: (0,1),(2,3),..,(0,2),..
        self.pairs = tuple((i, i + step) for step in (1 << k for k in range(max(unroll - 1, 0).bit_length()))
                           for i in range(0, unroll - step, 2 * step))
        self.vec = head_dim // WARP
        # programmatic dependent launch (sm_90+): the grid is staged while the attention kernel still runs and
        # waits for it with griddepcontrol.wait, hiding most of the second launch's latency
        self.pdl = pdl
        self.threads = warps * WARP

    def smem_bytes(self) -> int:
        """The partial sums of warps 1.. (fp32, one head-dim row each)."""
        return (self.warps - 1) * self.head_dim * 4

    def why_not(self, target: str) -> str | None:
        return None

    @cute.jit
    def __call__(self, args: ReduceArgs, stream):
        """See :class:`ReduceArgs`: one CTA per output row (batch, query, head)."""
        mO = args.mO
        rows = mO.shape[0] * mO.shape[1] * mO.shape[2]
        # .minnctapersm 1: without it ptxas trades the round's loads in flight for registers (two at a time)
        self.kernel(args).launch(grid=[rows, 1, 1], block=[self.threads, 1, 1], smem=self.smem_bytes(),
                                 stream=stream, use_pdl=self.pdl, min_blocks_per_mp=1)

    @cute.kernel
    def kernel(self, args: ReduceArgs):
        mOp, mLSEp, mO, mLSE = args
        tidx, _, _ = cute.arch.thread_idx()
        row, _, _ = cute.arch.block_idx()
        lane = tidx % WARP
        warp = tidx // WARP
        nheads = mO.shape[2]
        seqlen_q = mO.shape[1]
        head = row % nheads
        q = (row // nheads) % seqlen_q
        batch = row // (nheads * seqlen_q)
        splits = mOp.shape[0]
        if cutlass.const_expr(self.pdl):
            cute.arch.griddepcontrol_wait()  # the attention kernel's partials are complete and visible
        # ---- LSE of the merged row (every warp; base 2 inside): the first lse_slots * 32 from registers ----
        rLSE = cute.make_rmem_tensor((self.lse_slots,), Float32)
        # loads clamped to the last split and masked after, so they stay branch-free and all in flight
        for i in cutlass.range_constexpr(self.lse_slots):
            v = mLSEp[cutlass.min(i * WARP + lane, splits - 1), batch, head, q]
            rLSE[i] = v if i * WARP + lane < splits else -Float32.inf
        m = -Float32.inf
        for i in cutlass.range_constexpr(self.lse_slots):
            m = cute.arch.fmax(m, rLSE[i])
        for s0 in cutlass.range(self.lse_slots * WARP, splits, WARP, unroll=1):
            if s0 + lane < splits:
                m = cute.arch.fmax(m, mLSEp[s0 + lane, batch, head, q])
        m = row_allreduce(m, "max", ALL_LANES)
        safe = 0.0 if m == -Float32.inf else m
        total = Float32(0.0)
        for i in cutlass.range_constexpr(self.lse_slots):
            total += cute.math.exp2((rLSE[i] - safe) * LOG2_E, fastmath=True)
        for s0 in cutlass.range(self.lse_slots * WARP, splits, WARP, unroll=1):
            if s0 + lane < splits:
                total += cute.math.exp2((mLSEp[s0 + lane, batch, head, q] - safe) * LOG2_E, fastmath=True)
        total = row_allreduce(total, "sum", ALL_LANES)
        empty = total == 0.0
        lse = -Float32.inf if empty else safe + cute.math.log2(total, fastmath=True) * LN2
        lse_safe = 0.0 if empty else lse
        # ---- this warp's splits: Σ exp(LSE_i − LSE)·O_i over the lane's columns, unroll splits per round ----
        acc = cute.make_rmem_tensor((self.vec,), Float32)
        acc.fill(0.0)
        # (vec, unroll) the lane's columns of this round's splits; (unroll,) their LSEs
        parts = cute.make_rmem_tensor((self.vec, self.unroll), Float32)
        lse_s = cute.make_rmem_tensor((self.unroll,), Float32)
        for s0 in cutlass.range(warp, splits, self.warps * self.unroll, unroll=1):
            for i in cutlass.range_constexpr(self.unroll):
                s = cutlass.min(s0 + i * self.warps, splits - 1)
                lse_s[i] = mLSEp[s, batch, head, q]
                cute.autovec_copy(cute.local_tile(mOp[s, batch, q, head, None], (self.vec,), (lane,)),
                                  parts[None, i])
            for i in cutlass.range_constexpr(self.unroll):
                # weight 0 for a clamped load past the last split
                w = cute.math.exp2((lse_s[i] - lse_safe) * LOG2_E, fastmath=True)
                w = w if s0 + i * self.warps < splits else Float32(0.0)
                parts[None, i].store(parts[None, i].load() * w)
            # pairwise sums: no chain through acc, so the loads are not serialized behind it
            for j in cutlass.range_constexpr(len(self.pairs)):
                a, b = self.pairs[j]
                parts[None, a].store(parts[None, a].load() + parts[None, b].load())
            acc.store(acc.load() + parts[None, 0].load())
        part = cute.make_rmem_tensor((self.vec,), Float32)
        # ---- the warps meet in shared memory; warp 0 writes the row ----
        # (vec, lanes, warps - 1) partial sums of warps 1..
        sAcc = SmemAllocator().allocate_tensor(
            Float32, cute.make_layout((self.vec, WARP, self.warps - 1), stride=(1, self.vec, self.head_dim)), 16)
        if warp > 0:
            cute.autovec_copy(acc, sAcc[None, lane, warp - 1])
        cute.arch.barrier()
        if warp == 0:
            for w in cutlass.range_constexpr(self.warps - 1):
                cute.autovec_copy(sAcc[None, lane, w], part)
                acc.store(acc.load() + part.load())
            rO = cute.make_rmem_tensor((self.vec,), self.dtype)
            rO.store(acc.load().to(self.dtype))
            cute.autovec_copy(rO, cute.local_tile(mO[batch, q, head, None], (self.vec,), (lane,)))
            if cutlass.const_expr(mLSE is not None):
                if lane == 0:
                    mLSE[batch, head, q] = lse
