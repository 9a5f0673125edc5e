"""KV append: write new K/V tokens into their cache slots on the device (TurboMind's ``processKV`` step; into a
quantized cache: :mod:`~cute_attention.kernels.kv_quant_append`).

Token ``i`` of sequence ``b`` goes to logical position ``cache_seqlens[b] + i``: row ``pos`` of a contiguous
cache, or row ``pos % block_size`` of block ``block_table[b, pos // block_size]`` of a paged one. Positions
outside ``[0, capacity)`` are skipped, so no slot but the appended ones is ever written and the host never
has to read the lengths (no synchronization). One CTA per (token, sequence) copies every KV head's
16-byte vectors of K and V, each through registers, where the prologue slot's ops (RoPE, quantization, later)
run on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.core.contracts import KVCacheLayout, RowOp
from cute_attention.kernels.abi import DTYPES, KernelRecord, fake_bshd, fake_cache_fields, fake_int32
from cute_attention.kernels.kv_quant_append import KVQuantAppend
from cute_attention.kernels.prologue import TokenRows, apply_ops
from cute_attention.kv import LinearKVCache, PagedKVCache
from cute_attention.kv.quant import KVQuant

THREADS = 128
VEC_BITS = 128


class AppendArgs(NamedTuple):
    """The append kernel's arguments, in launch order."""

    mKnew: cute.Tensor  # (batch, seqlen_new, nheads_kv, d)
    mVnew: cute.Tensor
    mKc: cute.Tensor  # (batch, capacity, nheads_kv, d), or paged (num_blocks, block_size, nheads_kv, d)
    mVc: cute.Tensor
    mPageTable: cute.Tensor | None  # (batch, max_blocks) int32, paged caches only
    mSeqlens: cute.Tensor  # (batch,) int32 tokens already cached
    # a quantized cache (mKc/mVc its 8-bit data; :mod:`~cute_attention.kernels.kv_quant_append`): int8/int4 (scale,
    # zero) pairs shaped like the cache with d -> 2, or fp8 fp32 descale factors (batch, nheads_kv)
    mKParams: cute.Tensor | None = None
    mVParams: cute.Tensor | None = None
    mKDescale: cute.Tensor | None = None
    mVDescale: cute.Tensor | None = None


@dataclass(frozen=True)
class AppendParams(KernelRecord):
    """The append kernel's launch configuration (compile-time only)."""

    dtype: str
    head_dim: int
    block_size: int  # 0: contiguous cache
    ops: tuple[RowOp, ...] = ()  # the prologue slot's ops on each new token's K and V vectors
    kv_quant: KVQuant | None = None  # quantize the new tokens into a cache of this format

    @property
    def label(self) -> str:
        cache = f"paged {self.block_size}" if self.block_size else "contiguous"
        quant = f", {self.kv_quant.name}" if self.kv_quant is not None else ""
        return f"KV append ({self.dtype}, d{self.head_dim}, {cache}{quant})"

    @property
    def kv_cache(self) -> KVCacheLayout:
        return PagedKVCache(self.block_size) if self.block_size else LinearKVCache()

    def build(self, target: str):
        if self.kv_quant is not None:
            if self.ops:
                raise NotImplementedError("row ops before a quantizing append are not built yet")
            return KVQuantAppend(DTYPES[self.dtype], self.head_dim, self.kv_cache, self.kv_quant)
        return KVAppend(DTYPES[self.dtype], self.head_dim, self.kv_cache, self.ops)

    def fake_args(self) -> tuple:
        dtype, d = DTYPES[self.dtype], self.head_dim
        cache, params, descale = fake_cache_fields(dtype, d, self.block_size, self.kv_quant)
        return (AppendArgs(fake_bshd(dtype, d), fake_bshd(dtype, d), cache(), cache(),
                           fake_int32(2) if self.block_size else None, fake_int32(1), params(), params(), descale(),
                           descale()),)

    @staticmethod
    def launch_args(k_new, v_new, k_cache, v_cache, block_table, cache_seqlens,
                    kv_quant=(None, None, None, None)) -> tuple:
        """``kv_quant``: a quantized cache's (k params, v params, k descale, v descale)."""
        return (AppendArgs(k_new, v_new, k_cache, v_cache, block_table, cache_seqlens, *kv_quant),)


class KVAppend:
    """Kernel object for one dtype, head dim and KV cache layout (where a token's row lives)."""

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, kv_cache: KVCacheLayout,
                 ops: tuple[RowOp, ...] = ()):
        self.dtype = dtype
        self.head_dim = head_dim
        self.kv_cache = kv_cache
        self.ops = ops
        self.vec = VEC_BITS // dtype.width
        if head_dim % self.vec:
            raise ValueError(f"head_dim must be a multiple of {self.vec}, got {head_dim}")
        self.threads = THREADS

    def smem_bytes(self) -> int:
        return 0

    def why_not(self, target: str) -> str | None:
        return None

    @cute.jit
    def __call__(self, args: AppendArgs, stream):
        """One CTA per (new token, sequence); see :class:`AppendArgs`."""
        self.kernel(args).launch(grid=[args.mKnew.shape[1], args.mKnew.shape[0], 1], block=[self.threads, 1, 1],
                                 stream=stream)

    @cute.kernel
    def kernel(self, args: AppendArgs):
        mKnew, mVnew, mKc, mVc = args.mKnew, args.mVnew, args.mKc, args.mVc
        mPageTable, mSeqlens = args.mPageTable, args.mSeqlens
        tidx, _, _ = cute.arch.thread_idx()
        token, batch, _ = cute.arch.block_idx()
        pos = mSeqlens[batch] + token
        if pos >= 0 and pos < self.kv_cache.capacity(mKc, mPageTable):
            heads = mKnew.shape[2]
            per_head = self.head_dim // self.vec
            # (nheads_kv, d) the token's slots, located once: the cache stores below would keep the compiler
            # from hoisting the block-table read out of the loop
            dst_k = self.kv_cache.token_row(mKc, mPageTable, batch, pos)
            dst_v = self.kv_cache.token_row(mVc, mPageTable, batch, pos)
            rows = TokenRows(batch, token, pos)
            for i in cutlass.range(tidx, heads * per_head, self.threads, unroll=1):
                head = i // per_head
                j = i % per_head
                self.copy_vec(mKnew[batch, token, head, None], dst_k[head, None], head, j, rows)
                self.copy_vec(mVnew[batch, token, head, None], dst_v[head, None], head, j, rows)

    @cute.jit
    def copy_vec(self, src: cute.Tensor, dst: cute.Tensor, head: Int32, j: Int32, rows: TokenRows):
        """Vector ``j`` (16 bytes) of KV head ``head``'s ``(d,)`` row, through registers (and the ops)."""
        r = cute.make_rmem_tensor((self.vec,), self.dtype)
        cute.autovec_copy(cute.local_tile(src, (self.vec,), (j,)), r)
        if cutlass.const_expr(len(self.ops) > 0):
            # (vec,) the (KV head, column) of each value
            coords = cute.local_tile(cute.make_identity_tensor((head + 1, self.head_dim))[head, None],
                                     (self.vec,), (j,))
            apply_ops(self.ops, r, coords, rows)
        cute.autovec_copy(r, cute.local_tile(dst, (self.vec,), (j,)))
