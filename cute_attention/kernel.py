"""The attention kernel object (TurboMind's ``AttentionUniversal<Arch, Mainloop, CacheIteratorFactory, CtaMap>``).

``AttentionKernel`` composes a :class:`~cute_attention.variant.Variant` (Impl recipe, mainloop
strategy, KV cache factory, CTA map) for one dtype, head dim and mask spec:

* prologue: map the CTA to (query tile, head, batch), compute the tile schedule, start loading Q;
  with ``variant.pack_gqa`` a CTA serves every query head of one KV head, their rows packed into M
  (row ``r`` = token ``r // group`` of head ``r % group``), so each K/V tile is read once per group;
* mainloop: the variant's strategy walks the KV tiles (three phases);
* epilogue: merge warp groups if the KV tile was split, normalize, write O (through shared
  memory, 16-byte stores) and the LSE; with ``split_kv`` each CTA walks one KV split and writes its
  normalized fp32 partial O and LSE instead, for the reduction kernel (:mod:`cute_attention.split_reduce`).

With ``pdl`` (split-K builds on sm_90+) the kernel is launched as a programmatic dependent of the previous
kernel on the stream: its CTAs are staged while that kernel drains and wait (``griddepcontrol.wait``) before
touching global memory; then it lets the reduction kernel stage its CTAs at once.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32
from cutlass.cutlass_dsl import SMEM_CAPACITY_MAP
from cutlass.memory import SmemAllocator

from cute_attention.arch.gmem_iterator import StoreIterator
from cute_attention.arch.thread_map import ThreadMap
from cute_attention.cta_map import query_grid
from cute_attention.index_math import kv_tile_schedule, split_schedule
from cute_attention.mainloop_args import MainloopArgs
from cute_attention.masks import MaskSpec
from cute_attention.row_gather import PackedRows, row_view
from cute_attention.softmax import LOG2_E

SMEM_ALIGN = 1024


def smem_capacity(target: str) -> int:
    """Shared memory one CTA may use on ``target`` (``sm_90a`` counts as ``sm_90``), from the DSL's table."""
    base = target[:-1] if target.endswith(("a", "f")) else target
    if base not in SMEM_CAPACITY_MAP:
        raise ValueError(f"unknown target {target!r}; known: {sorted(SMEM_CAPACITY_MAP)}")
    return SMEM_CAPACITY_MAP[base]


class AttentionKernel:
    """Prefill attention over BSHD tensors for one compile-time configuration."""

    def __init__(self, variant, dtype: type[cutlass.Numeric], head_dim: int, mask: MaskSpec, with_lse: bool,
                 split_kv: bool = False, pdl: bool = False):
        self.variant = variant
        self.pdl = pdl
        self.dtype = dtype
        self.head_dim = head_dim
        self.mask = mask
        self.with_lse = with_lse or split_kv
        self.split_kv = split_kv
        self.pack_gqa = variant.pack_gqa
        self.impl = variant.impl.build(dtype, head_dim)
        self.mainloop = variant.mainloop
        self.kv_cache = variant.kv_cache
        self.cta_map = variant.cta_map.for_mask(mask)
        self.threads = self.impl.threads
        self.tile_m = self.impl.tile_m
        self.tile_n = self.impl.tile_n

    # ---- host-side facts ----
    def smem_parts(self) -> tuple[int, int, int]:
        """Bytes of the Q tile, of the K/V ring (or the warp merge), and of the Impl's scratch (e.g. P)."""
        elem = self.dtype.width // 8
        q_bytes = self.tile_m * self.head_dim * elem
        ring = self.mainloop.kv_slots * self.tile_n * self.head_dim * elem
        return q_bytes, max(ring, self.impl.merge_bytes()), self.impl.scratch_bytes()

    def smem_bytes(self) -> int:
        q_bytes, kv_bytes, scratch = self.smem_parts()
        extra = scratch + SMEM_ALIGN if scratch else 0
        if self.impl.q_in_regs:  # Q's tile and the K/V ring share one region
            return max(q_bytes, kv_bytes) + SMEM_ALIGN + extra
        return q_bytes + kv_bytes + SMEM_ALIGN + extra

    def why_not(self, target: str = "sm_80") -> str | None:
        """Reason this configuration cannot run on ``target``, or None (FA4's ``can_implement``)."""
        if self.dtype not in (cutlass.Float16, cutlass.BFloat16):
            return f"dtype {self.dtype} is not fp16/bf16"
        dtype_name = {cutlass.Float16: "float16", cutlass.BFloat16: "bfloat16"}[self.dtype]
        if dtype_name not in self.variant.dtypes:
            return f"dtype {dtype_name} not in {self.variant.dtypes}"
        if self.head_dim not in self.variant.head_dims:
            return f"head_dim {self.head_dim} not in {self.variant.head_dims}"
        rows_per_pass = ThreadMap(self.threads, self.head_dim, self.dtype.width).rows_per_pass
        for name, rows in (("tile_m", self.tile_m), ("tile_n", self.tile_n)):
            if rows < rows_per_pass:  # the copy would run past the tile in shared memory
                return (f"{name} {rows} is smaller than the {rows_per_pass} rows one pass of {self.threads} threads "
                        f"copies at head_dim {self.head_dim}")
        limit = smem_capacity(target)
        if self.smem_bytes() > limit:
            return f"needs {self.smem_bytes()} B of shared memory, {target} has {limit}"
        return None

    # ---- host side of the launch ----
    @cute.jit
    def __call__(
        self,
        mQ: cute.Tensor,
        mK: cute.Tensor,
        mV: cute.Tensor,
        mO: cute.Tensor,
        mLSE: cute.Tensor | None,
        mPageTable: cute.Tensor | None,
        mSeqlensK: cute.Tensor | None,
        softmax_scale: Float32,
        window_left: Int32,
        window_right: Int32,
        num_splits: Int32,
        stream,
    ):
        """``mO``/``mLSE``: ``(batch, seqlen_q, nheads, d)`` / ``(batch, nheads, seqlen_q)``, or with
        ``split_kv`` fp32 ``(splits, batch, seqlen_q, nheads, d)`` / ``(splits, batch, nheads, seqlen_q)``.
        With a paged cache ``mK``/``mV`` are ``(num_blocks, block_size, nheads_kv, d)`` and ``mPageTable`` is
        ``(batch, max_blocks)`` int32; ``mSeqlensK (batch,)`` int32 gives each sequence's length when the
        cache factory asks for it (else ``mK.shape[1]``). With ``pack_gqa`` the grid runs over KV heads and
        each query tile holds ``tile_m`` packed (token, head) rows."""
        num_q_tiles, grid_heads = query_grid(mQ.shape[1], mQ.shape[2], mK.shape[2], self.tile_m, self.pack_gqa)
        grid = self.cta_map.grid(num_q_tiles, grid_heads, mQ.shape[0], num_splits)
        self.kernel(mQ, mK, mV, mO, mLSE, mPageTable, mSeqlensK, softmax_scale * LOG2_E, window_left,
                    window_right, num_q_tiles, num_splits).launch(
            grid=grid, block=[self.threads, 1, 1], smem=self.smem_bytes(), stream=stream, use_pdl=self.pdl)

    # ---- device side ----
    @cute.kernel
    def kernel(
        self,
        mQ: cute.Tensor,
        mK: cute.Tensor,
        mV: cute.Tensor,
        mO: cute.Tensor,
        mLSE: cute.Tensor | None,
        mPageTable: cute.Tensor | None,
        mSeqlensK: cute.Tensor | None,
        scale_log2: Float32,
        window_left: Int32,
        window_right: Int32,
        num_q_tiles: Int32,
        num_splits: Int32,
    ):
        impl = self.impl
        if cutlass.const_expr(self.pdl):
            # every global read and write waits for the previous kernel (it may write K/V, or still read a
            # buffer this call reuses); the reduction's CTAs may be staged from here on
            cute.arch.griddepcontrol_wait()
            cute.arch.griddepcontrol_launch_dependents()
        tidx, _, _ = cute.arch.thread_idx()
        q_tile, head, batch, split = self.cta_map.tile_coords(num_q_tiles, num_splits, self.split_kv)
        seqlen_q = mQ.shape[1]
        seqlen_k = mK.shape[1]
        if cutlass.const_expr(self.kv_cache.seqlens):
            # lengths come from the device unchecked: clamp to the cache's capacity so no read leaves it
            seqlen_k = cutlass.max(cutlass.min(mSeqlensK[batch], self.kv_cache.capacity(mK, mPageTable)), 0)
        kv_head = head  # PackGQA: the grid runs over KV heads
        if cutlass.const_expr(not self.pack_gqa):
            kv_head = head // (mQ.shape[2] // mK.shape[2])
        q_start = q_tile * self.tile_m
        rows_q = seqlen_q  # rows of the query tiles
        group = 1
        q_rows = o_rows = None  # PackGQA: the row sources of Q and O
        if cutlass.const_expr(self.pack_gqa):
            group = mQ.shape[2] // mK.shape[2]
            rows_q = seqlen_q * group
            q_rows = PackedRows(mQ[batch, None, None, None], q_start, group, head * group, self.tile_m,
                                self.head_dim)
            if cutlass.const_expr(not self.split_kv):
                o_rows = PackedRows(mO[batch, None, None, None], q_start, group, head * group, self.tile_m,
                                    self.head_dim)
        sched = kv_tile_schedule(q_start, self.tile_m, self.tile_n, seqlen_q, seqlen_k, window_left,
                                 window_right, self.mask.has_left, self.mask.has_right, group)
        if cutlass.const_expr(self.split_kv):
            sched = split_schedule(sched, split, num_splits)

        # ---- shared memory: Q tile (reused for O) | K/V ring (reused by the warp merge) | Impl scratch (P);
        # Q and the ring share one region when Q's fragments stay in registers ----
        q_bytes, kv_bytes, scratch_bytes = self.smem_parts()
        smem = SmemAllocator()
        if cutlass.const_expr(impl.q_in_regs):
            ptr_q = smem.allocate(max(q_bytes, kv_bytes), byte_alignment=SMEM_ALIGN)
            ptr_kv = ptr_q
        else:
            ptr_q = smem.allocate(q_bytes, byte_alignment=SMEM_ALIGN)
            ptr_kv = smem.allocate(kv_bytes, byte_alignment=SMEM_ALIGN)
        ptr_scratch = None
        if cutlass.const_expr(scratch_bytes > 0):
            ptr_scratch = smem.allocate(scratch_bytes, byte_alignment=SMEM_ALIGN)
        sQ = impl.q_tile(ptr_q)
        sKV = impl.kv_ring(ptr_kv, self.mainloop.kv_slots)

        # ---- prologue ----
        q_it = self.mainloop.gmem_iterator(self.dtype, self.tile_m, self.head_dim, self.threads)
        # (tile_m, head_dim)
        gQ = q_rows
        if cutlass.const_expr(not self.pack_gqa):
            gQ = cute.local_tile(mQ[batch, None, head, None], (self.tile_m, self.head_dim), (q_tile, 0))
        self.mainloop.load_q(q_it, q_it.partition(tidx, gQ, sQ), rows_q - q_start)

        st = impl.make_state(tidx, sQ, sKV, ptr_scratch)
        if cutlass.const_expr(impl.q_in_regs):
            # Q -> registers once; after the second barrier the ring may overwrite Q's shared memory
            self.mainloop.wait_q()
            cute.arch.barrier()
            impl.load_q_regs(st)
            cute.arch.barrier()
        acc_O = impl.make_acc_O(st)
        softmax = impl.make_softmax(scale_log2, acc_O)
        kv_it = self.mainloop.gmem_iterator(self.dtype, self.tile_n, self.head_dim, self.threads)
        # (tile_n, head_dim, tiles)
        gK = self.kv_cache.tiles(mK, batch, kv_head, self.tile_n, self.head_dim, mPageTable)
        gV = self.kv_cache.tiles(mV, batch, kv_head, self.tile_n, self.head_dim, mPageTable)
        args = MainloopArgs(
            impl=impl, st=st, softmax=softmax, acc_O=acc_O, it=kv_it,
            k_part=kv_it.partition(tidx, gK, sKV), v_part=kv_it.partition(tidx, gV, sKV),
            sched=sched, q_start=q_start, seqlen_q=seqlen_q, seqlen_k=seqlen_k,
            window_left=window_left, window_right=window_right, mask=self.mask, group=group,
        )

        # ---- mainloop ----
        self.mainloop.run(args)

        # ---- epilogue ----
        softmax.reduce_sum()
        cute.arch.barrier()
        if cutlass.const_expr(impl.warps_s > 1):
            impl.merge(st, softmax, acc_O, cute.recast_ptr(ptr_kv, dtype=Float32))
        lse = softmax.finalize(impl.rows_cols_view(acc_O))
        if cutlass.const_expr(self.split_kv):
            if st.ws == 0:  # (always true with warps_s == 1)
                self.write_partial(st, acc_O, lse, mO, mLSE, q_start, rows_q, head, batch, split, q_rows)
        else:
            if cutlass.const_expr(impl.warps_s == 1):
                self.write_group(st, acc_O, lse, sQ, mLSE, q_start, rows_q, head, batch, q_rows)
            else:
                if st.ws == 0:
                    self.write_group(st, acc_O, lse, sQ, mLSE, q_start, rows_q, head, batch, q_rows)
            cute.arch.barrier()
            o_it = StoreIterator(self.dtype, self.tile_m, self.head_dim, self.threads)
            gO = o_rows
            if cutlass.const_expr(not self.pack_gqa):
                gO = cute.local_tile(mO[batch, None, head, None], (self.tile_m, self.head_dim), (q_tile, 0))
            o_it.store(o_it.partition(tidx, sQ, gO), rows_q - q_start)

    @cute.jit
    def write_group(self, st, acc_O: cute.Tensor, lse: cute.Tensor, sO: cute.Tensor, mLSE: cute.Tensor | None,
                    q_start: Int32, rows_q: Int32, head: Int32, batch: Int32, q_rows: PackedRows | None):
        """The warp group holding the final result writes O to shared memory and the LSE to global
        (``q_rows``: PackGQA's row → (token, head) map, else row = token of ``head``)."""
        self.impl.store_o(st, acc_O, sO)
        if cutlass.const_expr(mLSE is not None):
            if st.tOcO_mn[0, 0][1] == 0:
                for r in cutlass.range_constexpr(cute.size(lse)):
                    row = q_start + st.tOcO_mn[r, 0][0]
                    if row < rows_q:
                        if cutlass.const_expr(q_rows is None):
                            mLSE[batch, head, row] = lse[r]
                        else:
                            mLSE[batch, q_rows.coords(st.tOcO_mn[r, 0][0])[1], row // q_rows.group] = lse[r]

    @cute.jit
    def write_partial(self, st, acc_O: cute.Tensor, lse: cute.Tensor, mOp: cute.Tensor, mLSEp: cute.Tensor,
                      q_start: Int32, rows_q: Int32, head: Int32, batch: Int32, split: Int32,
                      q_rows: PackedRows | None):
        """Split-K: this split's normalized O (fp32, straight from registers) and LSE, valid rows only."""
        impl = self.impl
        acc_O_mn = impl.rows_cols_view(acc_O)
        if cutlass.const_expr(q_rows is None):
            # (tile_m, head_dim) this split's partial O of the query tile
            gO = cute.local_tile(mOp[split, batch, None, head, None], (self.tile_m, self.head_dim),
                                 (q_start // self.tile_m, 0))
            tOgO_mn = impl.rows_cols_view(impl.partition_O(st, gO))
        for r in cutlass.range_constexpr(cute.size(acc_O_mn.shape[0])):
            row = q_start + st.tOcO_mn[r, 0][0]
            if cutlass.const_expr(q_rows is None):
                if row < rows_q:
                    cute.autovec_copy(acc_O_mn[r, None], tOgO_mn[r, None])
                    if st.tOcO_mn[0, 0][1] == 0:
                        mLSEp[split, batch, head, row] = lse[r]
            else:
                token, h = q_rows.coords(st.tOcO_mn[r, 0][0])
                # (tile_m, head_dim) view whose every row is this row's partial O
                gO_row = row_view(mOp[split, batch, token, h, None].iterator, self.tile_m, self.head_dim)
                tOgO_row = impl.rows_cols_view(impl.partition_O(st, gO_row))[r, None]
                if row < rows_q:
                    cute.autovec_copy(acc_O_mn[r, None], tOgO_row)
                    if st.tOcO_mn[0, 0][1] == 0:
                        mLSEp[split, batch, h, token] = lse[r]
