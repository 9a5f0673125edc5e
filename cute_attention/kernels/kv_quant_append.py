"""Quantizing KV append: new K/V tokens quantized on the device and written with their parameters into their
cache slots (TurboMind's ``processKV`` with quantization).

Slots follow :mod:`~cute_attention.kernels.kv_append`'s rule (position ``cache_seqlens[b] + i``, skipped outside
the capacity). One CTA per (new token, sequence); each (KV head, K or V) row of ``d`` values is quantized by a
group of lanes of one warp: the row's min and max by butterfly shuffles, then the reference quantizer's steps
(:mod:`cute_attention.kv.quant`) one IEEE-rounded fp32 operation at a time (:mod:`cute_attention.core.rounding`),
so the stored bytes and parameters equal ``quantize_kv``'s.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32

from cute_attention.arch.common.kv_dequant import PARAMS, STORAGE
from cute_attention.core.contracts import KVCacheLayout
from cute_attention.core.rounding import div_rn, mul_rn, rcp_rn, rint, sub_rn
from cute_attention.core.targets import sm_version
from cute_attention.kv.quant import FP8_MAX, KVQuant

THREADS = 128
WARP = 32


def lanes_per_row(head_dim: int, per_byte: int) -> int:
    """Lanes that share one row: the most (at most a warp, a power of two) that split ``head_dim`` into whole
    stored bytes each."""
    lanes = WARP
    while head_dim % lanes or (head_dim // lanes) % per_byte:
        lanes //= 2
    return lanes


class KVQuantAppend:
    """Kernel object for one dtype, head dim, KV cache layout and quantized format."""

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, kv_cache: KVCacheLayout, fmt: KVQuant):
        self.dtype = dtype
        self.head_dim = head_dim
        self.kv_cache = kv_cache
        self.fmt = fmt
        self.threads = THREADS
        self.lanes = lanes_per_row(head_dim, fmt.per_byte)
        self.per_lane = head_dim // self.lanes
        self.rows_per_pass = THREADS // self.lanes
        self.storage = STORAGE[fmt.kind]
        self.param_dtype = PARAMS[fmt.param_dtype] if fmt.has_params else None

    def smem_bytes(self) -> int:
        return 0

    def why_not(self, target: str) -> str | None:
        if self.fmt.kind == "fp8" and sm_version(target) < 89:
            return f"fp8 K/V needs the e4m3 conversions of sm_89 and newer, not {target}"
        return None

    @cute.jit
    def __call__(self, args, stream):
        """One CTA per (new token, sequence); ``args`` is an :class:`~cute_attention.kernels.kv_append.AppendArgs`."""
        self.kernel(args).launch(grid=[args.mKnew.shape[1], args.mKnew.shape[0], 1], block=[self.threads, 1, 1],
                                 stream=stream)

    @cute.kernel
    def kernel(self, args):
        tidx, _, _ = cute.arch.thread_idx()
        token, batch, _ = cute.arch.block_idx()
        pos = args.mSeqlens[batch] + token
        if pos >= 0 and pos < self.kv_cache.capacity(args.mKc, args.mPageTable):
            heads = args.mKnew.shape[2]
            lane = tidx % self.lanes
            # the token's (nheads_kv, cols) data slots and (nheads_kv, 2) parameter slots, located once
            dst_k = self.kv_cache.token_row(args.mKc, args.mPageTable, batch, pos)
            dst_v = self.kv_cache.token_row(args.mVc, args.mPageTable, batch, pos)
            for r in cutlass.range(tidx // self.lanes, 2 * heads, self.rows_per_pass, unroll=1):
                head = r // 2
                if r % 2 == 0:
                    self.quantize_row(args.mKnew[batch, token, head, None], dst_k[head, None], args.mKParams,
                                      args.mKDescale, batch, head, pos, lane, args.mPageTable)
                else:
                    self.quantize_row(args.mVnew[batch, token, head, None], dst_v[head, None], args.mVParams,
                                      args.mVDescale, batch, head, pos, lane, args.mPageTable)

    @cute.jit
    def quantize_row(self, src: cute.Tensor, dst: cute.Tensor, mParams, mDescale, batch: Int32, head: Int32,
                     pos: Int32, lane: Int32, mPageTable):
        """This lane's ``per_lane`` values of one ``(d,)`` row -> its stored bytes (and, lane 0, the pair)."""
        rx = cute.make_rmem_tensor((self.per_lane,), self.dtype)
        cute.autovec_copy(cute.local_tile(src, (self.per_lane,), (lane,)), rx)
        x = cute.make_rmem_tensor((self.per_lane,), Float32)
        x.store(rx.load().to(Float32))
        out = cute.make_rmem_tensor((self.per_lane // self.fmt.per_byte,), self.storage)
        if cutlass.const_expr(self.fmt.kind == "fp8"):
            descale = mDescale[batch, head]
            y = cute.make_rmem_tensor((self.per_lane,), Float32)
            for i in cutlass.range_constexpr(self.per_lane):
                y[i] = cutlass.min(cutlass.max(div_rn(x[i], descale), Float32(-FP8_MAX)), Float32(FP8_MAX))
            out.store(y.load().to(self.storage))
        else:
            lo, hi = x[0], x[0]
            for i in cutlass.range_constexpr(1, self.per_lane):
                lo, hi = cutlass.min(lo, x[i]), cutlass.max(hi, x[i])
            for k in cutlass.range_constexpr(self.lanes.bit_length() - 1):  # the row's lanes, butterfly
                lo = cutlass.min(lo, cute.arch.shuffle_sync_bfly(lo, offset=self.lanes >> (k + 1)))
                hi = cutlass.max(hi, cute.arch.shuffle_sync_bfly(hi, offset=self.lanes >> (k + 1)))
            scale = mul_rn(sub_rn(hi, lo), Float32(1.0 / self.fmt.levels)).to(self.param_dtype)
            zero = lo.to(self.param_dtype)
            s, z = Float32(scale), Float32(zero)
            inv = rcp_rn(s)
            if s == Float32(0.0):  # a constant row: every level 0
                inv = Float32(0.0)
            q = cute.make_rmem_tensor((self.per_lane,), Int32)
            for i in cutlass.range_constexpr(self.per_lane):
                level = rint(mul_rn(sub_rn(x[i], z), inv))
                q[i] = Int32(cutlass.min(cutlass.max(level, Float32(0.0)), Float32(self.fmt.levels)))
            for j in cutlass.range_constexpr(self.per_lane // self.fmt.per_byte):
                if cutlass.const_expr(self.fmt.per_byte == 2):
                    out[j] = self.storage(q[2 * j] | (q[2 * j + 1] << 4))
                else:
                    out[j] = self.storage(q[j] - self.fmt.offset)
            if lane == 0:
                pair = self.kv_cache.token_row(mParams, mPageTable, batch, pos)[head, None]
                pair[0] = scale
                pair[1] = zero
        cute.autovec_copy(out, cute.local_tile(dst, (self.per_lane // self.fmt.per_byte,), (lane,)))
