"""The attention kernel object (TurboMind's ``AttentionUniversal<Arch, Mainloop, CacheIteratorFactory, CtaMap>``)
and its parameter record.

:class:`AttentionParams` is one launch configuration: the compile-time flags (the compile key: variant, dtype,
head dim, mask bounds, LSE, split-K, prologue ops) and the runtime scalars (softmax scale, window, split count),
built once per call signature. It makes the kernel object (:meth:`~AttentionParams.build`), the symbolic
arguments a compile needs (:meth:`~AttentionParams.fake_args`) and the arguments of one launch
(:meth:`~AttentionParams.launch_args`); :class:`AttentionArgs` is that argument record, the same on the host, at
the JIT boundary and on the device. Adding a tensor means a field of the record, its fake, its launch value and
the code that reads it.

:class:`AttentionKernel` composes a :class:`~cute_attention.kernels.variant.Variant` (Impl recipe, mainloop
strategy, KV cache layout, CTA map) for one such configuration:

* prologue: locate the CTA's work (:mod:`~cute_attention.kernels.tile_work`: query tile, head, batch, split,
  lengths, KV tile schedule; with ``variant.pack_gqa`` every query head of one KV head packed into the tile's
  rows), then move Q to shared memory through the prologue slot (:mod:`~cute_attention.kernels.prologue`);
* mainloop: the variant's strategy walks the KV tiles (three phases);
* epilogue (:mod:`~cute_attention.kernels.epilogue`): merge warp groups if the KV tile was split, normalize,
  write O (through shared memory, 16-byte stores) and the LSE, or with ``split_kv`` the split's normalized fp32
  partial O and LSE for the reduction kernel (:mod:`~cute_attention.kernels.split_reduce`).

Shared memory is one struct (:mod:`~cute_attention.kernels.shared_storage`): the Q tile (reused for O), the K/V
ring (reused by the warp merge; shared with Q when Q's fragments stay in registers) and the Impl's scratch.

With ``pdl`` (split-K builds on sm_90+) the kernel is launched as a programmatic dependent of the previous
kernel on the stream: its CTAs are staged while that kernel drains and wait (``griddepcontrol.wait``) before
touching global memory; then it lets the reduction kernel stage its CTAs at once.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import NamedTuple

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32
from cutlass.memory import SmemAllocator

from cute_attention.arch.common.combined_iterator import CombinedIterator, Pair
from cute_attention.arch.common.kv_dequant import PARAMS, STORAGE
from cute_attention.arch.common.thread_map import ThreadMap
from cute_attention.core.contracts import MainloopArgs, RowOp
from cute_attention.core.masks import MaskSpec
from cute_attention.core.softmax import LOG2_E
from cute_attention.core.targets import smem_capacity
from cute_attention.kernels.abi import (
    DTYPES,
    KernelRecord,
    fake_bshd,
    fake_cache_fields,
    fake_int32,
    fake_lse,
    fake_partial_o,
    runtime,
)
from cute_attention.kernels.attention_ws import AttentionKernelWS
from cute_attention.kernels.cta_map import query_grid
from cute_attention.kernels.epilogue import AttentionEpilogue
from cute_attention.kernels.kernel_base import AttentionKernelBase
from cute_attention.kernels.prologue import QRows
from cute_attention.kernels.shared_storage import SmemPart, SmemUnion, make_storage
from cute_attention.kernels.tile_work import locate_work
from cute_attention.kernels.variant import Variant


class AttentionArgs(NamedTuple):
    """The attention kernel's arguments, in launch order (host call, JIT boundary and device alike)."""

    mQ: cute.Tensor  # (batch, seqlen_q, nheads, d)
    mK: cute.Tensor  # (batch, seqlen_k, nheads_kv, d), or paged (num_blocks, block_size, nheads_kv, d)
    mV: cute.Tensor  # like mK
    mO: cute.Tensor  # like mQ; split-K: fp32 partials (splits, batch, seqlen_q, nheads, d)
    mLSE: cute.Tensor | None  # fp32 (batch, nheads, seqlen_q); split-K: (splits, batch, nheads, seqlen_q)
    mPageTable: cute.Tensor | None  # (batch, max_blocks) int32, paged caches only
    mSeqlensK: cute.Tensor | None  # (batch,) int32 keys per sequence, when the KV cache layout asks for them
    scale_log2: Float32  # softmax_scale · log2(e): scores stay raw, P = exp2(S·scale_log2 − M·scale_log2)
    window_left: Int32  # sliding-window bounds (used when the mask spec has them)
    window_right: Int32
    # varlen: sequences packed along one token axis (mQ/mK/mV/mO: (1, total, heads, d); mLSE: (1, nheads, total_q))
    mCuSeqlensQ: cute.Tensor | None = None  # (batch + 1,) int32 first row of each sequence, then the total
    mCuSeqlensK: cute.Tensor | None = None
    max_seqlen_q: Int32 | None = None  # sizes the grid's query tiles
    num_ctas: Int32 | None = None  # persistent kernels: CTAs to launch (the GPU's SM count), else None
    # a quantized cache (mK/mV then hold its 8-bit data): int8/int4 (scale, zero) pairs shaped like mK with d -> 2;
    # fp8 fp32 descale factors (batch, nheads_kv)
    mKParams: cute.Tensor | None = None
    mVParams: cute.Tensor | None = None
    mKDescale: cute.Tensor | None = None
    mVDescale: cute.Tensor | None = None


def fp32(x: float) -> float:
    """``x`` rounded to float32 (what the device computes with)."""
    return struct.unpack("f", struct.pack("f", x))[0]


@dataclass(frozen=True)
class AttentionParams(KernelRecord):
    """One attention launch configuration: compile-time flags (compared, hashed: the compile key) and runtime
    scalars (kernel arguments, never part of a key)."""

    variant: Variant
    dtype: str  # "float16" | "bfloat16"
    head_dim: int
    mask: MaskSpec = MaskSpec()
    with_lse: bool = False
    split_kv: bool = False  # write fp32 partial O + LSE per KV split (for the reduction kernel)
    q_ops: tuple[RowOp, ...] = ()  # the prologue slot's ops on Q (none registered yet)
    varlen: bool = False  # ragged batch: packed sequences delimited by cu_seqlens (:mod:`cute_attention.kv.ragged`)
    softmax_scale: float = runtime(1.0)
    window_left: int = runtime(0)  # -1 (unbounded) is passed as 0: the mask spec says which bounds exist
    window_right: int = runtime(0)
    num_splits: int = runtime(1)

    @property
    def ptxas_options(self) -> str:
        return self.variant.ptxas_options

    @property
    def label(self) -> str:
        mask = {(False, False): "", (False, True): ", causal", (True, True): ", window", (True, False): ", left window"}
        flags = mask[(self.mask.has_left, self.mask.has_right)] + (", LSE" if self.with_lse else "")
        flags += ", split-K" if self.split_kv else ""
        flags += f", {len(self.q_ops)} Q ops" if self.q_ops else ""
        flags += ", varlen" if self.varlen else ""
        return f"{self.variant.name} ({self.dtype}, d{self.head_dim}{flags})"

    @functools.cached_property
    def scale_log2(self) -> float:
        """``softmax_scale · log2(e)`` as the device would compute it in fp32."""
        return fp32(fp32(self.softmax_scale) * fp32(LOG2_E))

    def build(self, target: str) -> AttentionKernel | AttentionKernelWS:
        """The kernel object of this configuration: the warp-specialized body when the variant's mainloop is a
        warp-specialized strategy, else the body whose every warp loads and computes."""
        if self.variant.mainloop.warp_specialized:
            return AttentionKernelWS(self, target)
        return AttentionKernel(self, target)

    def fake_args(self) -> tuple:
        """Symbolic arguments of a compile (everything but the stream)."""
        dtype, d, cache = DTYPES[self.dtype], self.head_dim, self.variant.kv_cache
        kv, kv_params, kv_descale = fake_cache_fields(dtype, d, cache.block_size if cache.paged else 0,
                                                      self.variant.kv_quant)
        args = AttentionArgs(
            mQ=fake_bshd(dtype, d),
            mK=kv(),
            mV=kv(),
            mO=fake_partial_o(d) if self.split_kv else fake_bshd(dtype, d),
            mLSE=fake_lse(splits=True) if self.split_kv else fake_lse() if self.with_lse else None,
            mPageTable=fake_int32(2) if cache.paged else None,
            mSeqlensK=fake_int32(1) if cache.seqlens else None,
            scale_log2=Float32(1.0),
            window_left=Int32(0),
            window_right=Int32(0),
            mCuSeqlensQ=fake_int32(1) if self.varlen else None,
            mCuSeqlensK=fake_int32(1) if self.varlen else None,
            max_seqlen_q=Int32(1) if self.varlen else None,
            num_ctas=Int32(1) if self.persistent else None,
            mKParams=kv_params(),
            mVParams=kv_params(),
            mKDescale=kv_descale(),
            mVDescale=kv_descale(),
        )
        return args, Int32(1)

    @property
    def persistent(self) -> bool:
        """The kernel walks work units in one CTA per SM (its launch needs the SM count)."""
        return getattr(self.variant.mainloop, "persistent", False)

    def launch_args(self, q, k, v, out, lse, block_table=None, seqlens_k=None, varlen=None, num_ctas=None,
                    kv_quant=(None, None, None, None)) -> tuple:
        """One launch's arguments: ``out``/``lse`` are the result, or with ``split_kv`` the fp32 partials;
        ``varlen``: ``(cu_seqlens_q, cu_seqlens_k, max_seqlen_q)`` of a ragged batch; ``num_ctas``: the SM count,
        for persistent kernels; ``kv_quant``: a quantized cache's (k params, v params, k descale, v descale)."""
        cu_q, cu_k, max_q = varlen if varlen is not None else (None, None, None)
        if self.persistent and num_ctas is None:
            raise ValueError(f"{self.label} is persistent: its launch needs num_ctas (the GPU's SM count)")
        return (AttentionArgs(q, k, v, out, lse, block_table, seqlens_k, self.scale_log2, self.window_left,
                              self.window_right, cu_q, cu_k, max_q, num_ctas if self.persistent else None,
                              *kv_quant),
                self.num_splits)


class AttentionKernel(AttentionKernelBase):
    """Attention over BSHD tensors (or a KV cache) for one compile-time configuration and target."""

    def __init__(self, params: AttentionParams, target: str = "sm_80"):
        super().__init__(params, target)
        self.threads = self.impl.threads
        self.epilogue = AttentionEpilogue(self.impl, self.dtype, self.tile_m, self.head_dim, self.threads,
                                          self.split_kv, self.pack_gqa)
        self.storage = make_storage("AttentionStorage", self.smem_fields())

    # ---- host-side facts ----
    def smem_fields(self) -> list[SmemPart | SmemUnion]:
        """Shared memory by owner: the Impl's Q tile (reused for O), the mainloop's K/V ring (the drained ring is
        the warp merge's buffer), the Impl's scratch (P for shared-operand Impls). With Q in registers Q's tile
        and the ring share their bytes."""
        elem = self.dtype.width // 8
        q = SmemPart("q", self.tile_m * self.head_dim * elem)
        ring = SmemPart("ring", self.mainloop.kv_slots * self.impl.kv_slot_bytes())
        merge = SmemPart("merge", self.impl.merge_bytes())
        scratch = SmemPart("scratch", self.impl.scratch_bytes())
        if self.impl.q_in_regs:
            return [SmemUnion("q_kv", (q, ring, merge)), scratch]
        return [q, SmemUnion("kv", (ring, merge)), scratch]

    def why_not(self, target: str = "sm_80") -> str | None:
        """Reason this configuration cannot run on ``target``, or None (FA4's ``can_implement``)."""
        reason = self.why_not_variant()
        if reason is not None:
            return reason
        rows_per_pass = ThreadMap(self.threads, self.head_dim, self.dtype.width).rows_per_pass
        kv_rows_per_pass = rows_per_pass
        if self.kv_quant is not None:  # K/V rows of bytes: more of them a pass
            kv_rows_per_pass = self.kv_thread_map().rows_per_pass
        for name, rows, per_pass in (("tile_m", self.tile_m, rows_per_pass), ("tile_n", self.tile_n, kv_rows_per_pass)):
            if rows < per_pass:  # the copy would run past the tile in shared memory
                return (f"{name} {rows} is smaller than the {per_pass} rows one pass of {self.threads} threads "
                        f"copies at head_dim {self.head_dim}")
        limit = smem_capacity(target)
        if self.smem_bytes() > limit:
            return f"needs {self.smem_bytes()} B of shared memory, {target} has {limit}"
        return None

    # ---- host side of the launch ----
    @cute.jit
    def __call__(self, args: AttentionArgs, num_splits: Int32, stream):
        """Launch over ``args`` (see :class:`AttentionArgs`) with ``num_splits`` KV splits per query tile (1 unless
        ``split_kv``). With ``pack_gqa`` the grid runs over KV heads and each query tile holds ``tile_m`` packed
        (token, head) rows."""
        mQ, mK = args.mQ, args.mK
        seqlen_q, batch = mQ.shape[1], mQ.shape[0]
        if cutlass.const_expr(self.varlen):
            # a tile per max_seqlen_q rows of every sequence; CTAs past a sequence's end exit at once
            seqlen_q, batch = args.max_seqlen_q, args.mCuSeqlensQ.shape[0] - 1
        num_q_tiles, grid_heads = query_grid(seqlen_q, mQ.shape[2], mK.shape[2], self.tile_m, self.pack_gqa)
        grid = self.cta_map.grid(num_q_tiles, grid_heads, batch, num_splits)
        self.kernel(args, num_q_tiles, num_splits).launch(
            grid=grid, block=[self.threads, 1, 1], smem=self.smem_bytes(), stream=stream, use_pdl=self.pdl)

    # ---- device side ----
    @cute.kernel
    def kernel(self, args: AttentionArgs, num_q_tiles: Int32, num_splits: Int32):
        if cutlass.const_expr(self.pdl):
            # every global read and write waits for the previous kernel (it may write K/V, or still read a
            # buffer this call reuses); the reduction's CTAs may be staged from here on
            cute.arch.griddepcontrol_wait()
            cute.arch.griddepcontrol_launch_dependents()
        tidx, _, _ = cute.arch.thread_idx()
        work = locate_work(self.cta_map, self.kv_cache, args, num_q_tiles, num_splits, self.tile_m, self.tile_n,
                           self.head_dim, self.mask, self.pack_gqa, self.split_kv, self.varlen)
        if cutlass.const_expr(self.varlen):
            if work.q_start < work.rows_q:  # the grid is sized for the longest sequence
                self.body(args, work, tidx)
        else:
            self.body(args, work, tidx)

    def kv_thread_map(self) -> ThreadMap:
        """A quantized cache's byte rows: 16-byte copies, or 8 / 4 where a pass of 16-byte ones would cover more
        rows than the KV tile holds (int4 rows are half as long: d96 is 48 bytes, three vectors a row)."""
        cols = self.kv_quant.stored_cols(self.head_dim)
        maps = [ThreadMap(self.threads, cols, 8, bits) for bits in (128, 64, 32)]
        return next((m for m in maps if m.rows_per_pass <= self.tile_n), maps[0])

    def kv_tiles(self, args: AttentionArgs, work) -> tuple:
        """The K/V gmem iterator and this CTA's K and V tiles: ``(tile_n, head_dim, tiles)`` tensors or a paged
        cache's row sources; for an int8/int4 cache the combined iterator and (data, params) pairs."""
        cache, fmt = self.kv_cache, self.kv_quant
        if fmt is None:
            it = self.mainloop.gmem_iterator(self.dtype, self.tile_n, self.head_dim, self.threads)
            return (it, *(cache.tiles(m, work.batch, work.kv_head, self.tile_n, self.head_dim, args.mPageTable)
                          for m in (work.mK, work.mV)))
        cols = fmt.stored_cols(self.head_dim)
        it = self.mainloop.gmem_iterator(STORAGE[fmt.kind], self.tile_n, cols, self.threads,
                                         self.kv_thread_map().access_bits)
        gK, gV = (cache.tiles(m, work.batch, work.kv_head, self.tile_n, cols, args.mPageTable)
                  for m in (work.mK, work.mV))
        if not fmt.has_params:
            return it, gK, gV
        param_dtype = PARAMS[fmt.param_dtype]
        params_it = self.mainloop.gmem_iterator(param_dtype, self.tile_n, 2, self.tile_n, 2 * param_dtype.width)
        gKp, gVp = (cache.tiles(m, work.batch, work.kv_head, self.tile_n, 2, args.mPageTable)
                    for m in (args.mKParams, args.mVParams))
        return CombinedIterator(it, params_it), Pair(gK, gKp), Pair(gV, gVp)

    @cute.jit
    def body(self, args: AttentionArgs, work, tidx):
        """Prologue, mainloop and epilogue of one CTA's :class:`~cute_attention.kernels.tile_work.TileWork`."""
        impl = self.impl

        # ---- shared memory ----
        storage = SmemAllocator().allocate(self.storage)
        if cutlass.const_expr(impl.q_in_regs):
            ptr_q = storage.q_kv.q.data_ptr()
            ptr_kv = storage.q_kv.ring.data_ptr()
        else:
            ptr_q = storage.q.data_ptr()
            ptr_kv = storage.kv.ring.data_ptr()
        ptr_scratch = None
        if cutlass.const_expr(impl.scratch_bytes() > 0):
            ptr_scratch = storage.scratch.data_ptr()
        sQ = impl.q_tile(ptr_q)
        sKV = impl.kv_ring(ptr_kv, self.mainloop.kv_slots)

        # ---- prologue ----
        # (tile_m, head_dim), or PackGQA's row source
        gQ = work.q_rows
        if cutlass.const_expr(not self.pack_gqa):
            gQ = cute.local_tile(work.mQ[work.batch, None, work.head, None], (self.tile_m, self.head_dim),
                                 (work.q_tile, 0))
        rows = QRows(work.q_start, work.rows_q, work.seqlen_q, work.seqlen_k, work.group, work.head, work.batch)
        self.prologue.load_q(self.mainloop, tidx, gQ, sQ, rows, self.dtype, self.tile_m, self.head_dim,
                             self.threads, self.pack_gqa)
        st = impl.make_state(tidx, sQ, sKV, ptr_scratch)
        if cutlass.const_expr(impl.q_in_regs):
            # Q -> registers once; after the second barrier the ring may overwrite Q's shared memory
            self.mainloop.wait_q()
            cute.arch.barrier()
            impl.load_q_regs(st)
            cute.arch.barrier()
        acc_O = impl.make_acc_O(st)
        scale_log2 = args.scale_log2
        if cutlass.const_expr(args.mKDescale is not None):
            scale_log2 = scale_log2 * args.mKDescale[work.batch, work.kv_head]  # fp8: S = descale_K · Q·K8ᵀ
        softmax = impl.make_softmax(scale_log2, acc_O)
        kv_it, gK, gV = self.kv_tiles(args, work)
        k_part = kv_it.partition(tidx, gK, sKV, src_rows=self.kv_cache.paged)
        v_part = kv_it.partition(tidx, gV, sKV, src_rows=self.kv_cache.paged)
        mainloop_args = MainloopArgs(
            impl=impl, st=st, softmax=softmax, acc_O=acc_O, it=kv_it, k_part=k_part, v_part=v_part, sched=work.sched,
            q_start=work.q_start, seqlen_q=work.seqlen_q, seqlen_k=work.seqlen_k, window_left=args.window_left,
            window_right=args.window_right, mask=self.mask, group=work.group,
        )

        # ---- mainloop ----
        self.mainloop.run(mainloop_args)

        # ---- epilogue (the warp merge reuses the drained K/V ring) ----
        if cutlass.const_expr(args.mVDescale is not None):
            acc_O.store(acc_O.load() * args.mVDescale[work.batch, work.kv_head])  # fp8: O = descale_V · P·V8
        lse = self.epilogue.normalize(st, softmax, acc_O, ptr_kv)
        self.epilogue.write(tidx, st, acc_O, lse, sQ, work.mO, work.mLSE, work)
