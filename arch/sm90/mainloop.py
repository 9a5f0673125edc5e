"""Warp-specialized TMA mainloop (Hopper): one producer warp issues the bulk tensor copies of Q, K and V (with
``kv_cp_async`` the producer warp group's four warps copy a paged cache's K/V by cp.async), the consumer warp groups
run the warpgroup MMAs and the softmax (FlashAttention-3's schedule, TurboMind's three-phase walk).

K and V have separate rings of ``stages`` slots, each slot an mbarrier pair (full: the copy's bytes landed;
empty: every consumer warp released it). Walk step ``t`` (tiles from the last one down) uses slot ``t % stages``
of both rings, so a slot's phase is a function of ``t`` alone and nothing is carried across the walk.

The producer issues K(0), Q, then K(t), V(t−1) for t = 1 .. total−1, then V(total−1): the order the consumers
read them. Inside a consumer warp group (``intra_wg_overlap``), step t issues S(t) = Q·K(t)ᵀ and O += P(t−1)·V(t−1)
back to back, waits only for S(t), and runs the mask and softmax of tile t while P·V is in flight; O takes tile
t−1's rescale between the two issues (``rescale_o_early``, under Q·Kᵀ) or once P·V landed. Between consumer warp
groups (``wg_order``) named-barrier turns order the MMA issue, so one group's softmax runs under the other's MMAs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32
from cutlass.pipeline import PipelineState

from cute_attention.core.index_math import ring_slot_phase
from cute_attention.core.phase_walk import walk_phases

ORDER_BARRIER = 2  # named barriers ORDER_BARRIER + i: consumer warp group i's turn to issue MMAs (1 = epilogue)


@dataclass(frozen=True)
class WsMainloopArgs:
    """What the consumer warp groups of one CTA read (the warp-specialized counterpart of ``MainloopArgs``)."""

    impl: Any
    st: Any
    softmax: Any
    acc_O: Any
    tOrP: Any  # P of the previous walk step, as the A operand of P·V
    pipe_k: Any
    pipe_v: Any
    sched: Any
    q_start: Any
    seqlen_q: Any
    seqlen_k: Any
    window_left: Any
    window_right: Any
    mask: Any
    wg: Any  # this consumer warp group
    group: Any = 1
    # run by every consumer thread once the V tile of walk step 0 landed, before any P·V reads it, with its slot
    # (a KV cache zeroes its rows past the sequence's keys there); None: nothing to do
    v_ready: Any = None
    t0: Any = None  # a persistent CTA's K/V steps before this unit (None: the CTA's only unit)
    first_turn: bool = True  # this unit starts the warp-group turns (a persistent CTA's later units continue them)


def ring_state(t, stages: int, producer: bool) -> PipelineState:
    """Slot and phase of walk step ``t``'s load (:func:`ring_slot_phase`): consumers wait for the step's phase, the
    producer for the slot's release one lap earlier."""
    slot, phase = ring_slot_phase(t, stages)
    if producer:
        phase = phase ^ 1
    return PipelineState(stages, Int32(t), Int32(slot), Int32(phase))


@dataclass(frozen=True)
class Sm90WarpSpecialized:
    """Pipeline strategy: TMA producer warp, ``stages``-deep K and V rings, consumer warp groups."""

    stages: int = 2
    intra_wg_overlap: bool = True
    wg_order: bool = True  # named-barrier turns between consumer warp groups (2-3 groups)
    # O leaves shared memory by one TMA store (padded batches, one-pass builds) instead of 16-byte stores by every
    # consumer thread
    tma_o_store: bool = False
    # one CTA per SM walks work units (query tile, head, batch, split) round-robin: the next unit's first K/V loads
    # run under this unit's epilogue, and the CTA's setup is paid once
    persistent: bool = False
    # with the intra-group overlap: O is rescaled by the previous tile's factors right after S = Q·Kᵀ is issued,
    # under that MMA, instead of after P·V landed, where its multiplies lengthen the softmax's critical path
    rescale_o_early: bool = True
    # a paged cache's K/V tiles by cp.async from the producer warp group's 128 threads, located row group by row
    # group through the block table (FlashAttention-3's path for blocks smaller than a tile), instead of one TMA copy
    # per block; each slot's full barrier counts the 128 threads' cp.async completions
    kv_cp_async: bool = False
    name: str = "tma_ws"
    warp_specialized = True
    kv_quant = False  # the TMA producer moves 16-bit tiles only

    @property
    def sass_required(self) -> tuple[str, ...]:
        """Bulk copies (TMA loads, or cp.async for K/V), mbarriers, the role register split."""
        return ("LDGSTS" if self.kv_cp_async else "UTMALDG", "SYNCS", "USETMAXREG")

    @property
    def sass_forbidden(self) -> tuple[str, ...]:
        return () if self.kv_cp_async else ("LDGSTS",)

    def __post_init__(self):
        if self.stages < 2:
            raise ValueError(f"stages must be >= 2, got {self.stages}")

    @property
    def kv_slots(self) -> int:
        return 2 * self.stages

    def describe(self) -> str:
        return (f"TMA producer warp, K and V rings of {self.stages}, "
                + ("softmax overlapping P·V" if self.intra_wg_overlap else "no intra-group overlap")
                + (", O rescaled under Q·Kᵀ" if self.o_early else "")
                + (", warp-group turns" if self.wg_order else "")
                + (", O by TMA store" if self.tma_o_store else "")
                + (", K/V by cp.async" if self.kv_cp_async else "")
                + (", persistent CTAs" if self.persistent else ""))

    @property
    def o_early(self) -> bool:
        return self.rescale_o_early and self.intra_wg_overlap

    # ---- producer ----
    def ring(self, t, t0, producer: bool) -> PipelineState:
        """Walk step ``t``'s slot and phase; ``t0``: the K/V steps a persistent CTA walked before this unit (None:
        the CTA's only unit)."""
        return ring_state(t if t0 is None else t0 + t, self.stages, producer)

    @cute.jit
    def produce(self, sched, pipe_q, pipe_k, pipe_v, load_q, load_k, load_v, t0=None, q_iter=None, q_leader=True):
        """The producer's walk: ``load_x(tile, state)`` issues one tile's copies on ``state``'s barrier (each thread
        its share); ``load_q`` None: Q reaches shared memory another way (the consumers load it), else the
        ``q_leader`` warp issues its one copy. A persistent CTA passes ``t0`` and ``q_iter`` (its units so far): it
        loads Q for every unit, since the consumers release Q's tile after each epilogue."""
        total = sched.n_hi - sched.n_lo
        if cutlass.const_expr(q_iter is None):
            # a CTA's only unit: nothing to load when it walks no tile (its rows see no key)
            if total > 0:
                self.produce_first_k(sched, pipe_k, load_k, t0)
                self.produce_q(pipe_q, load_q, Int32(0), q_leader)
                self.produce_rest(sched, pipe_k, pipe_v, load_k, load_v, t0)
        else:
            if total > 0:
                self.produce_first_k(sched, pipe_k, load_k, t0)
            self.produce_q(pipe_q, load_q, q_iter, q_leader)
            if total > 0:
                self.produce_rest(sched, pipe_k, pipe_v, load_k, load_v, t0)

    @cute.jit
    def produce_q(self, pipe_q, load_q, q_iter, q_leader):
        if cutlass.const_expr(load_q is not None):
            if q_leader:
                q_state = ring_state(q_iter, 1, True)
                pipe_q.producer_acquire(q_state)
                load_q(q_state)

    @cute.jit
    def produce_tile(self, pipe, load, n, state):
        """Tile ``n`` into ``state``'s slot once the consumers released it; the commit signals a cp.async producer's
        share (a TMA copy's bytes complete the barrier themselves: no-op)."""
        pipe.producer_acquire(state)
        load(n, state)
        pipe.producer_commit(state)

    @cute.jit
    def produce_first_k(self, sched, pipe_k, load_k, t0):
        self.produce_tile(pipe_k, load_k, sched.n_hi - 1, self.ring(Int32(0), t0, True))

    @cute.jit
    def produce_rest(self, sched, pipe_k, pipe_v, load_k, load_v, t0):
        """Every load after K(0), in the order the consumers read them."""
        total = sched.n_hi - sched.n_lo
        if cutlass.const_expr(self.intra_wg_overlap):
            for t in cutlass.range(1, total, unroll=1):
                self.produce_tile(pipe_k, load_k, sched.n_hi - 1 - t, self.ring(t, t0, True))
                self.produce_tile(pipe_v, load_v, sched.n_hi - t, self.ring(t - 1, t0, True))
            self.produce_tile(pipe_v, load_v, sched.n_lo, self.ring(total - 1, t0, True))
        else:
            self.produce_tile(pipe_v, load_v, sched.n_hi - 1, self.ring(Int32(0), t0, True))
            for t in cutlass.range(1, total, unroll=1):
                s = self.ring(t, t0, True)
                self.produce_tile(pipe_k, load_k, sched.n_hi - 1 - t, s)
                self.produce_tile(pipe_v, load_v, sched.n_hi - 1 - t, s)

    # ---- consumer warp-group turns ----
    def ordered(self, consumer_wgs: int) -> bool:
        return self.wg_order and consumer_wgs > 1

    @cute.jit
    def order_init(self, a: WsMainloopArgs):
        """The first group holds the first turn."""
        if cutlass.const_expr(self.ordered(a.impl.consumer_wgs)):
            if a.wg == 0:
                cute.arch.barrier_arrive(barrier_id=ORDER_BARRIER, number_of_threads=256)

    @cute.jit
    def order_wait(self, a: WsMainloopArgs):
        if cutlass.const_expr(self.ordered(a.impl.consumer_wgs)):
            cute.arch.barrier(barrier_id=ORDER_BARRIER + a.wg, number_of_threads=256)

    @cute.jit
    def order_pass(self, a: WsMainloopArgs):
        if cutlass.const_expr(self.ordered(a.impl.consumer_wgs)):
            nxt = (a.wg + 1) % a.impl.consumer_wgs
            cute.arch.barrier_arrive(barrier_id=ORDER_BARRIER + nxt, number_of_threads=256)

    # ---- consumer ----
    @cute.jit
    def consume(self, a: WsMainloopArgs):
        """The consumer warp groups' walk over the KV tiles (three phases); ends with O unnormalized."""
        if cutlass.const_expr(a.first_turn):
            self.order_init(a)
        total = a.sched.n_hi - a.sched.n_lo
        if total > 0:
            # O's pending per-row factors (``o_early``): the last step's, applied before the next P·V
            o_scale = None
            if cutlass.const_expr(self.o_early):
                o_scale = cute.make_rmem_tensor((a.softmax.num_rows,), Float32)
            walk_phases(self, a, o_scale)
            if cutlass.const_expr(self.intra_wg_overlap):
                if cutlass.const_expr(self.o_early):
                    a.softmax.rescale(a.impl.rows_cols_view(a.acc_O), o_scale)
                self.pv_alone(a, self.ring(total - 1, a.t0, False), False)

    @cute.jit
    def scores(self, a: WsMainloopArgs, acc_S, t, mask: cutlass.Constexpr, is_first: cutlass.Constexpr):
        """Mask tile ``t``'s scores and turn them into P; returns O's rescale factors."""
        if cutlass.const_expr(mask is not None):
            a.impl.mask_scores(a.st, acc_S, a.q_start, a.sched.n_hi - 1 - t, a.seqlen_q, a.seqlen_k,
                               a.window_left, a.window_right, mask, a.group)
        return a.softmax.update_deferred(a.impl.rows_cols_view(acc_S), is_first)

    @cute.jit
    def wait_kv(self, pipe, state):
        """Wait until a K or V slot landed. Tiles written by cp.async went through the generic proxy: a proxy fence
        lets this thread's warpgroup MMAs (async proxy) see them."""
        pipe.consumer_wait(state)
        if cutlass.const_expr(self.kv_cp_async):
            cute.arch.fence_proxy("async.shared", space="cta")

    @cute.jit
    def qk_alone(self, a: WsMainloopArgs, sk):
        """S = Q·K of ring slot ``sk``, issued in this group's turn and waited for; K's slot released."""
        self.wait_kv(a.pipe_k, sk)
        self.order_wait(a)
        acc_S = a.impl.issue_qk(a.st, sk.index)
        self.order_pass(a)
        a.impl.wait(0)
        a.pipe_k.consumer_release(sk)
        return acc_S

    @cute.jit
    def pv_alone(self, a: WsMainloopArgs, sv, first_v: cutlass.Constexpr):
        """O += P·V of ring slot ``sv``, waited for; V's slot released (``first_v``: walk step 0's V, readied first)."""
        self.wait_kv(a.pipe_v, sv)
        if cutlass.const_expr(first_v and a.v_ready is not None):
            a.v_ready(sv.index)
        a.impl.issue_pv(a.st, a.tOrP, a.acc_O, sv.index)
        a.impl.wait(0)
        a.pipe_v.consumer_release(sv)

    @cute.jit
    def step(self, a: WsMainloopArgs, t, mask: cutlass.Constexpr, is_first: cutlass.Constexpr, o_scale=None):
        impl = a.impl
        sk = self.ring(t, a.t0, False)
        if cutlass.const_expr(not self.intra_wg_overlap):
            acc_S = self.qk_alone(a, sk)
            alpha = self.scores(a, acc_S, t, mask, is_first)
            a.softmax.rescale(impl.rows_cols_view(a.acc_O), alpha)
            impl.convert_p(acc_S, a.tOrP)
            self.pv_alone(a, sk, is_first)
        elif cutlass.const_expr(is_first):
            acc_S = self.qk_alone(a, sk)
            alpha = self.scores(a, acc_S, t, mask, True)
            if cutlass.const_expr(self.o_early):
                o_scale.store(alpha.load())
            impl.convert_p(acc_S, a.tOrP)
            if cutlass.const_expr(a.v_ready is not None):
                # V of step 0 is first read by step 1's P·V (or the tail's): ready it while that is still ahead
                sv = self.ring(t, a.t0, False)
                self.wait_kv(a.pipe_v, sv)
                a.v_ready(sv.index)
        else:
            sv = self.ring(t - 1, a.t0, False)
            self.wait_kv(a.pipe_k, sk)
            self.order_wait(a)
            acc_S = impl.issue_qk(a.st, sk.index)
            if cutlass.const_expr(self.o_early):
                a.softmax.rescale(impl.rows_cols_view(a.acc_O), o_scale)
            self.wait_kv(a.pipe_v, sv)
            impl.issue_pv(a.st, a.tOrP, a.acc_O, sv.index)
            self.order_pass(a)
            impl.wait(1)
            a.pipe_k.consumer_release(sk)
            alpha = self.scores(a, acc_S, t, mask, False)
            impl.wait(0)
            a.pipe_v.consumer_release(sv)
            if cutlass.const_expr(self.o_early):
                o_scale.store(alpha.load())
            else:
                a.softmax.rescale(impl.rows_cols_view(a.acc_O), alpha)
            impl.convert_p(acc_S, a.tOrP)
