"""The warp-specialized attention kernel object (Hopper): a producer warp group moves tiles by TMA, consumer warp
groups run the warpgroup MMAs (FlashAttention-3's roles, TurboMind's prologue / mainloop / epilogue).

It is a second kernel body beside :class:`~cute_attention.kernels.attention.AttentionKernel` for the same
:class:`~cute_attention.kernels.attention.AttentionParams` and :class:`~cute_attention.kernels.attention.AttentionArgs`
(so the host's plans, launch and split-K reduction are unchanged), and it reuses the CTA work
(:func:`~cute_attention.kernels.tile_work.locate_work`: tile, head, batch, split, the three-phase KV schedule), the
masks, the online softmax and the epilogue. What it brings: roles with their register budgets (``setmaxnreg``), the
shared-memory struct with the mbarrier arrays of the Q, K and V pipelines, and the TMA atoms made at launch.

Roles: warp group 0 is the producer (its warp 0 issues every TMA copy, the other three idle with few registers; with
the mainloop's ``kv_cp_async`` all four copy a paged cache's K/V by cp.async), warp groups 1.. are the consumers, 64
query rows each. The epilogue runs on the consumers only (named barrier 1).
For PackGQA tiles and prologue ops the consumers load Q themselves, through registers. Over a KV cache the K/V copies
come from its blocks (:meth:`AttentionKernelWS.load_paged`) and V's rows past a sequence's length are zeroed before
use. With the mainloop's ``persistent`` knob a CTA per SM walks work units instead of one (``persistent_roles``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32, pipeline
from cutlass.cute.nvgpu import cpasync
from cutlass.memory import SmemAllocator

from cute_attention.arch.sm90.mainloop import WsMainloopArgs, ring_state
from cute_attention.arch.sm90.paged_cp_async import PagedCpAsyncTiles
from cute_attention.arch.sm90.tma import TmaOperand, TmaTiles
from cute_attention.arch.sm90.wgmma_impl import WARPGROUP
from cute_attention.core.index_math import paged_box
from cute_attention.kernels.cta_map import query_grid
from cute_attention.kernels.epilogue import AttentionEpilogue
from cute_attention.kernels.kernel_base import AttentionKernelBase
from cute_attention.kernels.prologue import QRows
from cute_attention.kernels.shared_storage import SmemPart, make_storage
from cute_attention.kernels.tile_work import locate_work

EPILOGUE_BARRIER = 1  # named barrier of the consumer threads (0 is the whole CTA's)
# registers per thread (producer, consumer) by consumer warp groups: the producer issues TMA only
REGISTERS = {1: (56, 256), 2: (24, 240), 3: (32, 160)}
# a cp.async producer computes a row address per row group (FlashAttention-3 gives it 40 of 2 groups' budget)
CP_ASYNC_REGISTERS = {1: (56, 256), 2: (40, 232), 3: (32, 160)}


@dataclass(frozen=True)
class CtaShared:
    """One CTA's shared tiles (Q ``(tile_m, d, 1)``, K and V ``(tile_n, d, stages)``) and the pipelines over them."""

    sQ: Any
    sK: Any
    sV: Any
    pipe_q: Any
    pipe_k: Any
    pipe_v: Any


class AttentionKernelWS(AttentionKernelBase):
    """Warp-specialized attention over BSHD tensors for one compile-time configuration and target."""

    def __init__(self, params, target: str = "sm_90a"):
        super().__init__(params, target)
        # Q by the consumers through registers (a PackGQA tile's rows are no TMA box; ops run on Q in registers)
        # instead of by a TMA copy
        self.q_by_consumers = self.pack_gqa or bool(params.q_ops)
        # K/V by cp.async from the whole producer warp group (a paged cache's rows located row group by row group),
        # else by TMA from its warp 0
        self.kv_cp_async = self.mainloop.kv_cp_async
        self.producer_warps = WARPGROUP // 32 if self.kv_cp_async else 1
        # rows one K/V TMA copy moves: a tile, or a paged cache's block when blocks are smaller than tiles
        self.box_rows = None
        if self.kv_cache.paged and not self.kv_cp_async:
            self.box_rows = min(self.kv_cache.block_size, self.tile_n)
        self.stages = self.mainloop.stages
        self.consumer_threads = self.impl.threads
        self.threads = self.consumer_threads + WARPGROUP
        self.producer_regs, self.consumer_regs = (CP_ASYNC_REGISTERS if self.kv_cp_async
                                                  else REGISTERS)[self.impl.consumer_wgs]
        self.persistent = self.mainloop.persistent
        # one TMA store of O where rows past the tile's sequence are past the tensor's end (not varlen) and O is
        # the output (not split-K's fp32 partials)
        self.tma_o = self.mainloop.tma_o_store and not params.varlen and not params.split_kv and not self.pack_gqa
        self.epilogue = AttentionEpilogue(self.impl, self.dtype, self.tile_m, self.head_dim, self.consumer_threads,
                                          self.split_kv, self.pack_gqa, barrier_id=EPILOGUE_BARRIER)
        self.storage = make_storage("AttentionWSStorage", self.smem_fields())

    # ---- host-side facts ----
    def smem_fields(self) -> list[SmemPart]:
        """The pipelines' mbarriers (full + empty per slot: Q 1 slot, K and V ``stages`` each), the Q tile (reused
        for O), the K and V rings."""
        elem = self.dtype.width // 8
        tile = self.tile_n * self.head_dim * elem
        return [SmemPart("mbar", 8 * 2 * (1 + 2 * self.stages), align=8),
                SmemPart("q", self.tile_m * self.head_dim * elem),
                SmemPart("k", self.stages * tile),
                SmemPart("v", self.stages * tile)]

    def why_not(self, target: str = "sm_90a") -> str | None:
        """Reason this configuration cannot run on ``target``, or None (FA4's ``can_implement``)."""
        if target != "sm_90a":
            return f"the warp-specialized TMA + wgmma kernel needs target sm_90a, not {target}"
        reason = self.why_not_variant()
        if reason is not None:
            return reason
        if self.persistent and self.varlen:
            return "persistent CTAs are not built for varlen batches yet"
        if self.kv_cp_async and not self.kv_cache.paged:
            return "the cp.async K/V producer reads paged caches (TMA moves contiguous K/V)"
        if self.kv_cp_async and self.persistent:
            return "persistent CTAs are not built with the cp.async K/V producer"
        if self.kv_cp_async and (reason := self.cp_async_tiles().why_not()) is not None:
            return reason
        if self.box_rows is not None:
            bs = self.kv_cache.block_size
            if bs % self.tile_n and self.tile_n % bs:
                return f"paged blocks of {bs} rows and KV tiles of {self.tile_n} rows: neither divides the other"
            if self.box_rows < 16:
                return f"TMA boxes of {self.box_rows} rows: a box must span whole swizzle periods (16 rows)"
        limit = 227 * 1024
        if self.smem_bytes() > limit:
            return f"needs {self.smem_bytes()} B of shared memory, {target} has {limit}"
        return None

    # ---- host side of the launch ----
    @cute.jit
    def __call__(self, args, num_splits: Int32, stream):
        """Make the TMA atoms of Q, K and V and launch one CTA per (query tile, head, batch · split)."""
        mQ, mK = args.mQ, args.mK
        impl = self.impl
        tma_q = TmaOperand(None, None)
        if cutlass.const_expr(not self.q_by_consumers):
            tma_q = TmaTiles.make(mQ, impl.smem_layout(self.tile_m, 1), self.tile_m, self.head_dim)
        tma_k = tma_v = TmaOperand(None, None)
        if cutlass.const_expr(not self.kv_cp_async):
            tma_k = TmaTiles.make(mK, impl.kv_layout(self.stages), self.tile_n, self.head_dim, self.box_rows)
            tma_v = TmaTiles.make(args.mV, impl.kv_layout(self.stages), self.tile_n, self.head_dim, self.box_rows)
        tma_o = TmaOperand(None, None)
        if cutlass.const_expr(self.tma_o):
            tma_o = TmaTiles.make_store(args.mO, impl.smem_layout(self.tile_m, 1), self.tile_m, self.head_dim)
        seqlen_q, batch = mQ.shape[1], mQ.shape[0]
        if cutlass.const_expr(self.varlen):
            # a tile per max_seqlen_q rows of every sequence; CTAs past a sequence's end exit at once
            seqlen_q, batch = args.max_seqlen_q, args.mCuSeqlensQ.shape[0] - 1
        num_q_tiles, grid_heads = query_grid(seqlen_q, mQ.shape[2], mK.shape[2], self.tile_m, self.pack_gqa)
        grid = self.cta_map.grid(num_q_tiles, grid_heads, batch, num_splits)
        if cutlass.const_expr(self.persistent):
            # one CTA per SM (at most one per work unit); each walks units blockIdx.x, + gridDim.x, ...
            grid = (cutlass.min(num_q_tiles * grid_heads * batch * num_splits, args.num_ctas), 1, 1)
        self.kernel(args, tma_q.atom, tma_q.coords, tma_k.atom, tma_k.coords, tma_v.atom, tma_v.coords,
                    tma_o.atom, tma_o.coords, num_q_tiles, num_splits).launch(
            grid=grid, block=[self.threads, 1, 1], smem=self.smem_bytes(), stream=stream, use_pdl=self.pdl,
            min_blocks_per_mp=1)

    # ---- device side ----
    @cute.kernel
    def kernel(self, args, atom_q: cute.CopyAtom, tQ: cute.Tensor, atom_k: cute.CopyAtom, tK: cute.Tensor,
               atom_v: cute.CopyAtom, tV: cute.Tensor, atom_o: cute.CopyAtom, tO: cute.Tensor, num_q_tiles: Int32,
               num_splits: Int32):
        impl = self.impl
        warp = cute.arch.make_warp_uniform(cute.arch.warp_idx())
        if warp == 0:
            for atom in (atom_q, atom_k, atom_v, atom_o):
                if cutlass.const_expr(atom is not None):
                    cpasync.prefetch_descriptor(atom)
        storage = SmemAllocator().allocate(self.storage)
        mbar = cute.recast_ptr(storage.mbar.data_ptr(), dtype=cutlass.Int64)
        tma_thread = pipeline.CooperativeGroup(pipeline.Agent.Thread, 1)
        consumer_warps = pipeline.CooperativeGroup(pipeline.Agent.Thread, self.consumer_threads // 32)
        tile_bytes = TmaTiles.bytes(self.dtype, self.tile_n, self.head_dim)
        pipe_q = pipeline.PipelineTmaAsync.create(
            barrier_storage=mbar, num_stages=1, producer_group=tma_thread, consumer_group=consumer_warps,
            tx_count=TmaTiles.bytes(self.dtype, self.tile_m, self.head_dim), defer_sync=True)
        pipe_k = self.kv_pipeline(mbar + 2, tma_thread, consumer_warps, tile_bytes)
        pipe_v = self.kv_pipeline(mbar + 2 + 2 * self.stages, tma_thread, consumer_warps, tile_bytes)
        cute.arch.mbarrier_init_fence()
        ql, kvl = impl.smem_layout(self.tile_m, 1), impl.kv_layout(self.stages)
        cta = CtaShared(sQ=storage.q.get_tensor(ql.outer, swizzle=ql.inner, dtype=self.dtype),
                        sK=storage.k.get_tensor(kvl.outer, swizzle=kvl.inner, dtype=self.dtype),
                        sV=storage.v.get_tensor(kvl.outer, swizzle=kvl.inner, dtype=self.dtype),
                        pipe_q=pipe_q, pipe_k=pipe_k, pipe_v=pipe_v)
        tma = (TmaOperand(atom_q, tQ), TmaOperand(atom_k, tK), TmaOperand(atom_v, tV), TmaOperand(atom_o, tO))
        cute.arch.sync_threads()
        if cutlass.const_expr(self.pdl):
            # global memory is touched only after the previous kernel on the stream finished
            cute.arch.griddepcontrol_wait()
            cute.arch.griddepcontrol_launch_dependents()
        if cutlass.const_expr(self.persistent):
            self.persistent_roles(args, num_q_tiles, num_splits, warp, cta, tma)
        else:
            self.one_unit(args, num_q_tiles, num_splits, warp, cta, tma)

    def kv_pipeline(self, barriers, tma_thread, consumer_warps, tile_bytes):
        """K's or V's ring of ``stages`` slots: full when the TMA copy's bytes landed, or (cp.async) when each of the
        producer warp group's threads saw its copies complete; empty when every consumer warp (cp.async: thread)
        released it."""
        if cutlass.const_expr(self.kv_cp_async):
            return pipeline.PipelineCpAsync.create(
                barrier_storage=barriers, num_stages=self.stages,
                producer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread, WARPGROUP),
                consumer_group=pipeline.CooperativeGroup(pipeline.Agent.Thread, self.consumer_threads),
                defer_sync=True)
        return pipeline.PipelineTmaAsync.create(
            barrier_storage=barriers, num_stages=self.stages, producer_group=tma_thread,
            consumer_group=consumer_warps, tx_count=tile_bytes, defer_sync=True)

    @cute.jit
    def one_unit(self, args, num_q_tiles: Int32, num_splits: Int32, warp, cta: CtaShared, tma: tuple):
        """A CTA per work unit: this block's."""
        work = self.locate(args, num_q_tiles, num_splits)
        if cutlass.const_expr(self.varlen):
            if work.q_start < work.rows_q:  # the grid is sized for the longest sequence
                self.roles(args, work, num_q_tiles, num_splits, warp, cta, tma)
        else:
            self.roles(args, work, num_q_tiles, num_splits, warp, cta, tma)

    @cute.jit
    def locate(self, args, num_q_tiles: Int32, num_splits: Int32, coords=None):
        return locate_work(self.cta_map, self.kv_cache, args, num_q_tiles, num_splits, self.tile_m, self.tile_n,
                           self.head_dim, self.mask, self.pack_gqa, self.split_kv, self.varlen, coords,
                           lane_groups=True)

    @cute.jit
    def persistent_roles(self, args, num_q_tiles: Int32, num_splits: Int32, warp, cta: CtaShared, tma: tuple):
        """A CTA per SM walks work units ``blockIdx.x, + gridDim.x, ...`` (numbered like the blocks of a
        one-unit launch). Producer and consumers count the K/V walk steps and Q loads of the units behind them,
        which locate the next unit's ring slots; the consumers release Q's tile (also O's) after each epilogue."""
        mQ = args.mQ
        _, grid_heads = query_grid(mQ.shape[1], mQ.shape[2], args.mK.shape[2], self.tile_m, self.pack_gqa)
        num_units = num_q_tiles * grid_heads * mQ.shape[0] * num_splits
        first, _, _ = cute.arch.block_idx()
        stride, _, _ = cute.arch.grid_dim()
        if warp < 4:
            cute.arch.setmaxregister_decrease(self.producer_regs)
            if warp == 0:
                t0 = Int32(0)
                q_iter = Int32(0)
                for unit in cutlass.range(first, num_units, stride, unroll=1):
                    coords = self.cta_map.unit_coords(unit, num_q_tiles, grid_heads, num_splits, self.split_kv)
                    work = self.locate(args, num_q_tiles, num_splits, coords)
                    self.produce(args, work, cta, tma, t0, q_iter)
                    t0 = t0 + (work.sched.n_hi - work.sched.n_lo)
                    q_iter = q_iter + 1
        else:
            cute.arch.setmaxregister_increase(self.consumer_regs)
            tidx, _, _ = cute.arch.thread_idx()
            tidx = tidx - WARPGROUP
            # the first unit takes the first turn; later units continue the turns where the last one left them
            self.mainloop.order_init(SimpleNamespace(impl=self.impl, wg=cute.arch.make_warp_uniform(tidx // WARPGROUP)))
            t0 = Int32(0)
            q_iter = Int32(0)
            for unit in cutlass.range(first, num_units, stride, unroll=1):
                coords = self.cta_map.unit_coords(unit, num_q_tiles, grid_heads, num_splits, self.split_kv)
                work = self.locate(args, num_q_tiles, num_splits, coords)
                self.consume(args, work, num_q_tiles, num_splits, tidx, cta, tma[3], t0, q_iter)
                t0 = t0 + (work.sched.n_hi - work.sched.n_lo)
                q_iter = q_iter + 1

    @cute.jit
    def roles(self, args, work, num_q_tiles: Int32, num_splits: Int32, warp, cta: CtaShared, tma: tuple):
        """Warp group 0 produces (its warp 0 issues the TMA copies; all four issue cp.async), the others consume."""
        if warp < 4:
            cute.arch.setmaxregister_decrease(self.producer_regs)
            if warp < self.producer_warps:
                self.produce(args, work, cta, tma)
        else:
            cute.arch.setmaxregister_increase(self.consumer_regs)
            tidx, _, _ = cute.arch.thread_idx()
            self.consume(args, work, num_q_tiles, num_splits, tidx - WARPGROUP, cta, tma[3])

    @cute.jit
    def produce(self, args, work, cta: CtaShared, tma: tuple, t0=None, q_iter=None):
        """The producer warp: Q once (unless the consumers load it), then K and V tiles in walk order."""
        op_q, op_k, op_v, _ = tma
        # varlen: the descriptors see the packed tensors (batch 1); tiles start at the sequence's first row
        batch = 0 if cutlass.const_expr(self.varlen) else work.batch
        # (TMA, tiles) -> (TMA, stages)
        q = k = v = None
        if cutlass.const_expr(not self.q_by_consumers):
            q = TmaTiles.partition(op_q, work.head, batch, cta.sQ, self.tile_m, self.head_dim, work.q_offset)
        if cutlass.const_expr(not self.kv_cache.paged):
            k = TmaTiles.partition(op_k, work.kv_head, batch, cta.sK, self.tile_n, self.head_dim, work.k_offset)
            v = TmaTiles.partition(op_v, work.kv_head, batch, cta.sV, self.tile_n, self.head_dim, work.k_offset)

        def load_q(state):
            q.copy(work.q_tile, 0, cta.pipe_q.producer_get_barrier(state))

        if cutlass.const_expr(self.q_by_consumers):
            load_q = None

        def kv_loader(op, part, s, pipe):
            """``load(tile, state)`` of K or V: from a paged cache's blocks, or one tile of the tensor."""
            def load(n, state):
                if cutlass.const_expr(self.kv_cache.paged):
                    self.load_paged(op, work, args.mPageTable, n, s, state.index, pipe.producer_get_barrier(state))
                else:
                    part.copy(n, state.index, pipe.producer_get_barrier(state))
            return load

        q_leader = True  # the warp that issues Q's TMA copy (its elected thread does)
        if cutlass.const_expr(self.kv_cp_async):
            tidx, _, _ = cute.arch.thread_idx()
            load_k = self.cp_async_loader(args, work, work.mK, cta.sK, tidx)
            load_v = self.cp_async_loader(args, work, work.mV, cta.sV, tidx)
            q_leader = cute.arch.make_warp_uniform(cute.arch.warp_idx()) == 0
        else:
            load_k = kv_loader(op_k, k, cta.sK, cta.pipe_k)
            load_v = kv_loader(op_v, v, cta.sV, cta.pipe_v)
        self.mainloop.produce(work.sched, cta.pipe_q, cta.pipe_k, cta.pipe_v, load_q, load_k, load_v, t0, q_iter,
                              q_leader)

    def cp_async_loader(self, args, work, m: cute.Tensor, s: cute.Tensor, tidx):
        """``load(tile, state)`` of K or V by cp.async: this producer thread's share of a paged cache's tile."""
        mover = self.cp_async_tiles()
        part = mover.partition(tidx, s)
        # (num_blocks, block_size, d) of this KV head; (max_blocks,) block ids of this sequence
        cache, table_row = m[None, None, work.kv_head, None], args.mPageTable[work.batch, None]

        def load(n, state):
            mover.copy(part, cache, table_row, n, work.seqlen_k, state.index)
        return load

    def cp_async_tiles(self) -> PagedCpAsyncTiles:
        return PagedCpAsyncTiles(self.dtype, self.tile_n, self.head_dim, self.kv_cache.block_size, WARPGROUP)

    @cute.jit
    def load_paged(self, op: TmaOperand, work, table: cute.Tensor, n, s: cute.Tensor, stage, barrier):
        """KV tile ``n`` of a paged cache into ``s[None, None, stage]``: one box per block it spans (one when a block
        holds whole tiles). Lane j of the producer warp reads box j's block-table entry, all reads in flight at once,
        and the copies take them by shuffle (a read before each copy put up to 8 round trips in a row before a
        tile's last copy). A box wholly past the sequence's keys copies its first box instead (its rows are masked
        and, in V, zeroed): the block table has no entry for it."""
        boxes = self.tile_n // self.box_rows
        row = n * self.tile_n + cute.arch.lane_idx() * self.box_rows
        if row >= work.seqlen_k or cute.arch.lane_idx() >= boxes:
            row = Int32(0)
        entry, box = paged_box(row, self.box_rows, self.kv_cache.block_size)
        block = table[work.batch, entry]
        for j in cutlass.range(boxes, unroll=1):  # a loop: the producer has 24-56 registers
            TmaTiles.copy_box(op, work.kv_head, cute.arch.shuffle_sync(block, j), cute.arch.shuffle_sync(box, j), s,
                              stage, j, self.box_rows, self.head_dim, barrier)

    @cute.jit
    def zero_v_tail(self, sV: cute.Tensor, n_last, seqlen_k, tidx, slot):
        """Zero the rows of V tile ``n_last`` (in ``slot``) at or past ``seqlen_k`` before any P·V reads them: a
        cache's rows past a sequence's length hold anything (NaN included), and P = 0 there does not cancel NaN.
        Every consumer thread takes part (a named barrier ends it); runs once per CTA."""
        dead = cutlass.max(seqlen_k - n_last * self.tile_n, 0)
        if dead < self.tile_n:
            sv = sV[None, None, slot]
            chunks = self.head_dim // 8
            for i in cutlass.range(dead * chunks + tidx, self.tile_n * chunks, self.consumer_threads, unroll=1):
                r = i // chunks
                c = (i % chunks) * 8
                for e in cutlass.range_constexpr(8):
                    sv[r, c + e] = self.dtype(0)
            # the zeros (generic proxy) must be seen by the warpgroup MMAs (async proxy)
            cute.arch.fence_proxy("async.shared", space="cta")
            cute.arch.barrier(barrier_id=EPILOGUE_BARRIER, number_of_threads=self.consumer_threads)

    @cute.jit
    def consume(self, args, work, num_q_tiles: Int32, num_splits: Int32, tidx, cta: CtaShared, op_o: TmaOperand,
                t0=None, q_iter=None):
        """A consumer thread: wait for Q, walk the KV tiles, then the epilogue (``t0``, ``q_iter``: a persistent
        CTA's K/V walk steps and Q loads before this unit)."""
        impl = self.impl
        sQ = cta.sQ[None, None, 0]
        st = impl.make_state(tidx, sQ, cta.sK, cta.sV)
        acc_O = impl.make_acc_O(st)
        softmax = impl.make_softmax(args.scale_log2, acc_O)
        v_ready = None
        if cutlass.const_expr(self.kv_cache.seqlens):
            # a cache: rows past the sequence's keys are not zeros (TMA fills zeros only past the tensor's end)
            def v_ready(slot):
                self.zero_v_tail(cta.sV, work.sched.n_hi - 1, work.seqlen_k, tidx, slot)
        total = work.sched.n_hi - work.sched.n_lo
        persistent = q_iter is not None
        q_state = ring_state(Int32(0) if q_iter is None else q_iter, 1, False)
        if cutlass.const_expr(self.q_by_consumers):
            if cutlass.const_expr(persistent):
                # the previous unit's epilogue read O out of this tile
                cute.arch.barrier(barrier_id=EPILOGUE_BARRIER, number_of_threads=self.consumer_threads)
            # (tile_m, head_dim), or PackGQA's row source
            gQ = work.q_rows
            if cutlass.const_expr(not self.pack_gqa):
                gQ = cute.local_tile(work.mQ[work.batch, None, work.head, None], (self.tile_m, self.head_dim),
                                     (work.q_tile, 0))
            rows = QRows(work.q_start, work.rows_q, work.seqlen_q, work.seqlen_k, work.group, work.head, work.batch)
            self.prologue.load_q_through_registers(tidx, gQ, sQ, rows, self.dtype, self.tile_m, self.head_dim,
                                                   self.consumer_threads, self.pack_gqa)
            # the stores (generic proxy) must be seen by the warpgroup MMAs (async proxy) of every consumer
            cute.arch.fence_proxy("async.shared", space="cta")
            cute.arch.barrier(barrier_id=EPILOGUE_BARRIER, number_of_threads=self.consumer_threads)
        elif cutlass.const_expr(persistent):
            cta.pipe_q.consumer_wait(q_state)  # a persistent producer loads Q for every unit
        elif total > 0:
            cta.pipe_q.consumer_wait(q_state)
        a = WsMainloopArgs(
            impl=impl, st=st, softmax=softmax, acc_O=acc_O, tOrP=impl.make_p(st), pipe_k=cta.pipe_k, pipe_v=cta.pipe_v,
            sched=work.sched, q_start=work.q_start, seqlen_q=work.seqlen_q, seqlen_k=work.seqlen_k,
            window_left=args.window_left, window_right=args.window_right, mask=self.mask,
            wg=cute.arch.make_warp_uniform(tidx // WARPGROUP), group=work.group, v_ready=v_ready, t0=t0,
            first_turn=not persistent)
        self.mainloop.consume(a)
        if cutlass.const_expr(self.varlen):
            # the sequence's rebased views again (two cu_seqlens reads) rather than held in registers across the walk
            work = self.locate(args, num_q_tiles, num_splits)
        lse = self.epilogue.normalize(st, softmax, acc_O, None)
        if cutlass.const_expr(self.tma_o):
            # O (stmatrix) and the LSE by every consumer thread into shared memory / global, then one TMA store
            impl.store_o_stmatrix(st, acc_O, sQ)
            self.epilogue.write_lse(st, lse, work.mLSE, work)
            cute.arch.fence_proxy("async.shared", space="cta")
            self.epilogue.sync()
            if tidx == 0:
                TmaTiles.store(op_o, work.head, work.batch, cta.sQ, work.q_tile, self.tile_m, self.head_dim)
            if cutlass.const_expr(persistent and not self.q_by_consumers):
                self.epilogue.sync()  # the store has read O out of Q's tile
        else:
            self.epilogue.write(tidx, st, acc_O, lse, sQ, work.mO, work.mLSE, work)
        if cutlass.const_expr(persistent and not self.q_by_consumers):
            cta.pipe_q.consumer_release(q_state)  # the producer may load the next unit's Q
