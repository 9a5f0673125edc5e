"""FlashAttention-2-compatible entry points: ``flash_attn_func``, ``flash_attn_varlen_func`` and
``flash_attn_with_kvcache`` with FlashAttention 2's argument names, positions, defaults and return conventions.

They map onto :func:`~cute_attention.attention`, :func:`~cute_attention.api.varlen.attention_varlen` and
:func:`~cute_attention.attention_with_kvcache`. Arguments for features not built yet (dropout, ALiBi, softcap,
rotary embedding, left padding, paged varlen) raise ``NotImplementedError`` naming the argument unless they hold
their "off" value. ``deterministic`` is accepted: it concerns the backward pass, and the forward pass is
deterministic. ``return_attn_probs`` returns ``(out, softmax_lse, None)``: the probabilities are not materialized
(FlashAttention documents them as a testing aid only).
"""

from __future__ import annotations

import torch

from cute_attention.api.attention import attention
from cute_attention.api.kvcache import attention_with_kvcache
from cute_attention.api.varlen import attention_varlen
from cute_attention.kv import PAGED_BLOCK_SIZES, LinearKVCache, PagedKVCache


def _refuse(**off) -> None:
    """Raise for the first argument that asks for an unbuilt feature (``off``: name -> (value, is it off))."""
    for name, (value, is_off) in off.items():
        if not is_off:
            raise NotImplementedError(f"{name}={value!r} is not supported by cute_attention yet")


def _bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _window(window_size):
    return tuple(window_size) if isinstance(window_size, list) else window_size


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                    alibi_slopes=None, deterministic=False, return_attn_probs=False):
    """FlashAttention 2's ``flash_attn_func``: q ``(batch, seqlen_q, nheads, d)``, k/v ``(batch, seqlen_k,
    nheads_k, d)``. Returns ``out``, or with ``return_attn_probs`` ``(out, softmax_lse (batch, nheads, seqlen_q),
    None)``."""
    _refuse(dropout_p=(dropout_p, dropout_p == 0), softcap=(softcap, softcap == 0),
            alibi_slopes=(alibi_slopes, alibi_slopes is None))
    _bool("deterministic", deterministic)
    _bool("return_attn_probs", return_attn_probs)
    result = attention(q, k, v, softmax_scale=softmax_scale, causal=causal, window_size=_window(window_size),
                       return_lse=return_attn_probs)
    return (*result, None) if return_attn_probs else result


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, block_table=None):
    """FlashAttention 2's ``flash_attn_varlen_func``: q ``(total_q, nheads, d)``, k/v ``(total_k, nheads_k, d)``,
    ``cu_seqlens_*`` ``(batch + 1,)`` int32. Returns ``out``, or with ``return_attn_probs`` ``(out, softmax_lse
    (nheads, total_q), None)``. The offsets are checked on the host (see
    :func:`~cute_attention.api.varlen.attention_varlen`)."""
    _refuse(dropout_p=(dropout_p, dropout_p == 0), softcap=(softcap, softcap == 0),
            alibi_slopes=(alibi_slopes, alibi_slopes is None), block_table=("<tensor>", block_table is None))
    _bool("deterministic", deterministic)
    _bool("return_attn_probs", return_attn_probs)
    result = attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                              softmax_scale=softmax_scale, causal=causal, window_size=_window(window_size),
                              return_lse=return_attn_probs)
    return (*result, None) if return_attn_probs else result


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, rotary_cos=None, rotary_sin=None,
                            cache_seqlens=None, cache_batch_idx=None, cache_leftpad=None, block_table=None,
                            softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                            rotary_interleaved=True, alibi_slopes=None, num_splits=0, return_softmax_lse=False):
    """FlashAttention 2's ``flash_attn_with_kvcache``: new ``k``/``v`` are appended in place at ``cache_seqlens``
    (an int or ``(batch,)`` int32; None: every cache is full), then q attends over the cache. ``cache_batch_idx``
    ``(batch,)`` int32 picks the cache row of each sequence (contiguous caches whose length is a multiple of 16).
    Returns ``out``, or with ``return_softmax_lse`` ``(out, softmax_lse (batch, nheads, seqlen_q))``."""
    _refuse(rotary_cos=("<tensor>", rotary_cos is None), rotary_sin=("<tensor>", rotary_sin is None),
            cache_leftpad=("<tensor>", cache_leftpad is None), softcap=(softcap, softcap == 0),
            alibi_slopes=(alibi_slopes, alibi_slopes is None))
    _bool("rotary_interleaved", rotary_interleaved)
    if not isinstance(q, torch.Tensor) or not isinstance(k_cache, torch.Tensor):
        raise TypeError("q and k_cache must be torch.Tensors")
    if cache_batch_idx is not None:
        k_cache, v_cache, block_table = _rows_as_pages(k_cache, v_cache, cache_batch_idx, block_table, q)
    cache_seqlens = _seqlens(cache_seqlens, k_cache, block_table, k, q)
    return attention_with_kvcache(q, k_cache, v_cache, cache_seqlens, block_table=block_table, k=k, v=v,
                                  softmax_scale=softmax_scale, causal=causal, window_size=_window(window_size),
                                  num_splits=num_splits, return_lse=return_softmax_lse)


def _seqlens(cache_seqlens, k_cache, block_table, k, q) -> torch.Tensor:
    """``cache_seqlens`` as the ``(batch,)`` int32 device tensor the kernels read."""
    if isinstance(cache_seqlens, torch.Tensor):
        return cache_seqlens
    batch = q.shape[0]
    if cache_seqlens is None:
        if k is not None:
            raise ValueError("cache_seqlens is required when k and v are appended (where would they go?)")
        layout = PagedKVCache(k_cache.shape[1]) if block_table is not None else LinearKVCache()
        return torch.full((batch,), layout.capacity(k_cache, block_table), dtype=torch.int32, device=q.device)
    if isinstance(cache_seqlens, bool) or not isinstance(cache_seqlens, int):
        raise TypeError(f"cache_seqlens must be an int or an int32 tensor, got {type(cache_seqlens).__name__}")
    if cache_seqlens < 0:
        raise ValueError(f"cache_seqlens must be >= 0, got {cache_seqlens}")
    return torch.full((batch,), cache_seqlens, dtype=torch.int32, device=q.device)


def _rows_as_pages(k_cache, v_cache, cache_batch_idx, block_table, q):
    """``cache_batch_idx``: sequence ``b`` reads cache row ``cache_batch_idx[b]``. A contiguous cache is a paged one
    whose blocks are consecutive slices of its rows, so the row map becomes a block table (on the device)."""
    if block_table is not None:
        raise NotImplementedError("cache_batch_idx with a block_table (paged cache) is not supported")
    if not isinstance(cache_batch_idx, torch.Tensor):
        raise TypeError(f"cache_batch_idx must be a torch.Tensor, got {type(cache_batch_idx).__name__}")
    if cache_batch_idx.dtype != torch.int32:
        raise TypeError(f"cache_batch_idx must be int32, got {cache_batch_idx.dtype}")
    if cache_batch_idx.shape != (q.shape[0],):
        raise ValueError(f"cache_batch_idx must have shape ({q.shape[0]},), got {tuple(cache_batch_idx.shape)}")
    if cache_batch_idx.device != q.device:
        raise ValueError(f"cache_batch_idx is on {cache_batch_idx.device} but q is on {q.device}")
    if not isinstance(v_cache, torch.Tensor) or k_cache.ndim != 4 or v_cache.shape != k_cache.shape:
        raise ValueError("k_cache and v_cache must be (batch_cache, seqlen_cache, nheads_k, d) tensors of one shape")
    seqlen_cache = k_cache.shape[1]
    block = next((b for b in sorted(PAGED_BLOCK_SIZES, reverse=True) if seqlen_cache % b == 0), None)
    if block is None:
        raise NotImplementedError(f"cache_batch_idx needs a cache length that is a multiple of "
                                  f"{min(PAGED_BLOCK_SIZES)}, got seqlen_cache {seqlen_cache}")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        if t.stride(0) != seqlen_cache * t.stride(1):
            raise NotImplementedError(f"cache_batch_idx needs {name}'s rows to be consecutive in memory "
                                      f"(stride(0) == seqlen_cache * stride(1)), got strides {t.stride()}")
    per_row = seqlen_cache // block
    pages = [t.view(t.shape[0] * per_row, block, *t.shape[2:]) for t in (k_cache, v_cache)]
    table = cache_batch_idx[:, None] * per_row + torch.arange(per_row, dtype=torch.int32, device=q.device)
    return pages[0], pages[1], table
