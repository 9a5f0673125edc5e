"""Ragged (varlen) batches: sequences packed along one token axis, FlashAttention's ``cu_seqlens`` layout.

Sequence ``b`` owns rows ``cu_seqlens[b] .. cu_seqlens[b + 1]`` of a packed ``(total, nheads, d)`` tensor (passed to
the kernels as ``(1, total, nheads, d)``; its LSE ``(nheads, total)`` as ``(1, nheads, total)``). A CTA serving
sequence ``b`` rebases every packed tensor onto that sequence's first row, with a batch stride of 0, so the kernel
body indexes ``[batch, row, head, ...]`` exactly as for a padded batch and every row predicate uses the
sequence's own length: the mainloops, the epilogue and PackGQA's rows need no change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute


def ragged_span(cu_seqlens, batch):
    """(first row, length) of sequence ``batch`` (Python ints or DSL integers / tensors)."""
    start = cu_seqlens[batch]
    return start, cu_seqlens[batch + 1] - start


@cute.jit
def rebase(m: cute.Tensor, batch_mode: cutlass.Constexpr, row_mode: cutlass.Constexpr, start) -> cute.Tensor:
    """``m`` seen from row ``start`` of its ``row_mode``, with the ``batch_mode`` stride 0: ``view[b, r, ...]`` is
    ``m[0, start + r, ...]`` for every ``b``."""
    coord = [0] * cute.rank(m)
    coord[row_mode] = start
    shifted = cute.domain_offset(tuple(coord), m)
    stride = list(m.layout.stride)
    stride[batch_mode] = 0
    return cute.make_tensor(shifted.iterator, cute.make_layout(m.shape, stride=tuple(stride)))


@dataclass(frozen=True)
class RaggedViews:
    """The tensors one CTA of a varlen launch reads and writes, rebased onto its sequence's rows."""

    mQ: Any
    mK: Any
    mV: Any
    mO: Any
    mLSE: Any
    seqlen_q: Any
    seqlen_k: Any
    q_offset: Any  # packed row of the sequence's first query (TMA copies index the packed tensors from it)
    k_offset: Any


@cute.jit
def ragged_views(mQ, mK, mV, mO, mLSE, mCuSeqlensQ, mCuSeqlensK, batch, split_kv: cutlass.Constexpr) -> RaggedViews:
    """Sequence ``batch``'s views: Q/K/V/O rows (O: split-K's fp32 partials ``(splits, 1, total, h, d)`` with
    ``split_kv``) and the LSE ``(1, h, total)`` (partials ``(splits, 1, h, total)``)."""
    q_start, seqlen_q = ragged_span(mCuSeqlensQ, batch)
    k_start, seqlen_k = ragged_span(mCuSeqlensK, batch)
    vQ = rebase(mQ, 0, 1, q_start)
    vK = rebase(mK, 0, 1, k_start)
    vV = rebase(mV, 0, 1, k_start)
    o_batch = 1 if cutlass.const_expr(split_kv) else 0
    vO = rebase(mO, o_batch, o_batch + 1, q_start)
    vLSE = mLSE
    if cutlass.const_expr(mLSE is not None):
        vLSE = rebase(mLSE, o_batch, o_batch + 2, q_start)
    return RaggedViews(vQ, vK, vV, vO, vLSE, seqlen_q, seqlen_k, q_start, k_start)
