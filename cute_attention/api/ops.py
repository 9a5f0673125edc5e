"""The entry points as ``torch.library`` custom ops (namespace ``cute_attention``), for ``torch.compile``.

Eager calls never go through these: a custom op's dispatch costs tens of microseconds, so each entry point calls
its kernels directly and routes through its op only while Dynamo traces (``torch.compiler.is_compiling()``).
Every op writes into ``out`` (allocated by the traced wrapper when the caller gave none; declared in
``mutates_args``, as are the caches the KV-cache op appends to) and returns the LSE, or an empty tensor when it was
not asked for. The fake implementations give the LSE's shape, so ``torch.compile(fullgraph=True)`` traces a model
that calls them without a graph break.
"""

from __future__ import annotations

import torch

from cute_attention.api.checks import check_window

_EMPTY = (0,)


def variant_name(variant) -> str | None:
    """The name a variant passes through an op under (ops take strings); a composed, unregistered variant cannot."""
    if variant is None or isinstance(variant, str):
        return variant
    from cute_attention.host.registry import REGISTRY

    try:
        if REGISTRY.get(variant.name) is variant:
            return variant.name
    except (KeyError, AttributeError):
        pass
    raise NotImplementedError(
        f"variant: a composed Variant ({getattr(variant, 'name', variant)!r}) cannot pass through torch.compile; "
        f"register it (REGISTRY.register(v, lambda d: False)) and pass its name")


def _lse_or_empty(result, return_lse: bool, q: torch.Tensor) -> torch.Tensor:
    return result[1] if return_lse else q.new_empty(_EMPTY, dtype=torch.float32)


# ---- attention ----
@torch.library.custom_op("cute_attention::attention", mutates_args=("out",))
def attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, softmax_scale: float | None,
                 causal: bool, window_left: int, window_right: int, return_lse: bool, variant: str | None,
                 config: str | None, num_splits: int) -> torch.Tensor:
    from cute_attention.api.attention import attention

    result = attention(q, k, v, softmax_scale=softmax_scale, causal=causal, window_size=(window_left, window_right),
                       return_lse=return_lse, out=out, variant=variant, config=config, num_splits=num_splits)
    return _lse_or_empty(result, return_lse, q)


@attention_op.register_fake
def _(q, k, v, out, softmax_scale, causal, window_left, window_right, return_lse, variant, config, num_splits):
    b, sq, h, _ = q.shape
    return q.new_empty((b, h, sq) if return_lse else _EMPTY, dtype=torch.float32)


def traced_attention(q, k, v, softmax_scale, causal, window_size, return_lse, out, variant, config, num_splits):
    window_size = check_window(window_size)
    out = torch.empty_like(q) if out is None else out
    lse = attention_op(q, k, v, out, softmax_scale, causal, window_size[0], window_size[1], return_lse,
                       variant_name(variant), config, num_splits)
    return (out, lse) if return_lse else out


# ---- attention over a KV cache ----
@torch.library.custom_op("cute_attention::attention_with_kvcache",
                         mutates_args=("k_cache", "v_cache", "out", "k_cache_params", "v_cache_params"))
def kvcache_op(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, cache_seqlens: torch.Tensor,
               block_table: torch.Tensor | None, k: torch.Tensor | None, v: torch.Tensor | None, out: torch.Tensor,
               softmax_scale: float | None, causal: bool, window_left: int, window_right: int, num_splits: int,
               return_lse: bool, variant: str | None, config: str | None, check_lengths: bool,
               k_cache_params: torch.Tensor | None, v_cache_params: torch.Tensor | None,
               k_descale: torch.Tensor | None, v_descale: torch.Tensor | None) -> torch.Tensor:
    from cute_attention.api.kvcache import attention_with_kvcache

    result = attention_with_kvcache(q, k_cache, v_cache, cache_seqlens, block_table=block_table, k=k, v=v,
                                    softmax_scale=softmax_scale, causal=causal,
                                    window_size=(window_left, window_right), num_splits=num_splits,
                                    return_lse=return_lse, out=out, variant=variant, config=config,
                                    check_lengths=check_lengths, k_cache_params=k_cache_params,
                                    v_cache_params=v_cache_params, k_descale=k_descale, v_descale=v_descale)
    return _lse_or_empty(result, return_lse, q)


@kvcache_op.register_fake
def _(q, k_cache, v_cache, cache_seqlens, block_table, k, v, out, softmax_scale, causal, window_left, window_right,
      num_splits, return_lse, variant, config, check_lengths, k_cache_params, v_cache_params, k_descale, v_descale):
    b, sq, h, _ = q.shape
    return q.new_empty((b, h, sq) if return_lse else _EMPTY, dtype=torch.float32)


def traced_kvcache(q, k_cache, v_cache, cache_seqlens, block_table, k, v, softmax_scale, causal, window_size,
                   num_splits, return_lse, out, variant, config, check_lengths, quant=(None,) * 4):
    """``quant``: a quantized cache's (k params, v params, k descale, v descale); the pairs are written by an
    append, so the op declares them mutated."""
    window_size = check_window(window_size)
    out = torch.empty_like(q) if out is None else out
    lse = kvcache_op(q, k_cache, v_cache, cache_seqlens, block_table, k, v, out, softmax_scale, causal,
                     window_size[0], window_size[1], num_splits, return_lse, variant_name(variant), config,
                     check_lengths, *quant)
    return (out, lse) if return_lse else out


# ---- varlen ----
@torch.library.custom_op("cute_attention::attention_varlen", mutates_args=("out",))
def varlen_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens_q: torch.Tensor,
              cu_seqlens_k: torch.Tensor, out: torch.Tensor, max_seqlen_q: int, max_seqlen_k: int,
              softmax_scale: float | None, causal: bool, window_left: int, window_right: int, return_lse: bool,
              variant: str | None, config: str | None, num_splits: int, check_seqlens: bool) -> torch.Tensor:
    from cute_attention.api.varlen import attention_varlen

    result = attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                              softmax_scale=softmax_scale, causal=causal, window_size=(window_left, window_right),
                              return_lse=return_lse, out=out, variant=variant, config=config, num_splits=num_splits,
                              check_seqlens=check_seqlens)
    return _lse_or_empty(result, return_lse, q)


@varlen_op.register_fake
def _(q, k, v, cu_seqlens_q, cu_seqlens_k, out, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_left,
      window_right, return_lse, variant, config, num_splits, check_seqlens):
    total, h, _ = q.shape
    return q.new_empty((h, total) if return_lse else _EMPTY, dtype=torch.float32)


def traced_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_size,
                  return_lse, out, variant, config, num_splits, check_seqlens):
    window_size = check_window(window_size)
    out = torch.empty_like(q) if out is None else out
    lse = varlen_op(q, k, v, cu_seqlens_q, cu_seqlens_k, out, max_seqlen_q, max_seqlen_k, softmax_scale, causal,
                    window_size[0], window_size[1], return_lse, variant_name(variant), config, num_splits,
                    check_seqlens)
    return (out, lse) if return_lse else out
