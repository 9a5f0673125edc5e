"""KV append: write new K/V tokens into their cache slots on the device (TurboMind's ``processKV`` step, no quant).

Token ``i`` of sequence ``b`` goes to logical position ``cache_seqlens[b] + i``: row ``pos`` of a contiguous
cache, or row ``pos % block_size`` of block ``block_table[b, pos // block_size]`` of a paged one. Positions
outside ``[0, capacity)`` are skipped, so no slot but the appended ones is ever written and the host never
has to read the lengths (no synchronization). One CTA per (token, sequence) copies every KV head's
16-byte vectors of K and V.
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Int32

THREADS = 128
VEC_BITS = 128


class KVAppend:
    """Kernel object for one dtype, head dim and cache factory (where a token's row lives: ``kv_cache``, a
    :class:`~cute_attention.cache_iterators.LinearKVCache` or ``PagedKVCache``)."""

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, kv_cache):
        self.dtype = dtype
        self.head_dim = head_dim
        self.kv_cache = kv_cache
        self.vec = VEC_BITS // dtype.width
        if head_dim % self.vec:
            raise ValueError(f"head_dim must be a multiple of {self.vec}, got {head_dim}")
        self.threads = THREADS

    @cute.jit
    def __call__(self, mKnew: cute.Tensor, mVnew: cute.Tensor, mKc: cute.Tensor, mVc: cute.Tensor,
                 mPageTable: cute.Tensor | None, mSeqlens: cute.Tensor, stream):
        """``mKnew``/``mVnew (batch, seqlen_new, nheads_kv, d)``; caches ``(batch, capacity, nheads_kv, d)`` or
        paged ``(num_blocks, block_size, nheads_kv, d)`` with ``mPageTable (batch, max_blocks)``;
        ``mSeqlens (batch,)`` int32 tokens already cached."""
        self.kernel(mKnew, mVnew, mKc, mVc, mPageTable, mSeqlens).launch(
            grid=[mKnew.shape[1], mKnew.shape[0], 1], block=[self.threads, 1, 1], stream=stream)

    @cute.kernel
    def kernel(self, mKnew: cute.Tensor, mVnew: cute.Tensor, mKc: cute.Tensor, mVc: cute.Tensor,
               mPageTable: cute.Tensor | None, mSeqlens: cute.Tensor):
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
            for i in cutlass.range(tidx, heads * per_head, self.threads, unroll=1):
                head = i // per_head
                j = i % per_head
                self.copy_vec(mKnew[batch, token, head, None], dst_k[head, None], j)
                self.copy_vec(mVnew[batch, token, head, None], dst_v[head, None], j)

    @cute.jit
    def copy_vec(self, src: cute.Tensor, dst: cute.Tensor, j: Int32):
        """Vector ``j`` (16 bytes) of a ``(d,)`` row."""
        r = cute.make_rmem_tensor((self.vec,), self.dtype)
        cute.autovec_copy(cute.local_tile(src, (self.vec,), (j,)), r)
        cute.autovec_copy(r, cute.local_tile(dst, (self.vec,), (j,)))
