"""Checks of a quantized KV cache's tensors (:mod:`cute_attention.kv.quant`) before any launch: the format the
cache's dtype stands for, and its parameter tensors' dtype, shape and layout. Every error names the argument."""

from __future__ import annotations

import torch

from cute_attention.api.quantize import TORCH_PARAMS, kv_quant_of
from cute_attention.kv.quant import KVQuant


def check_kv_quant(q, k_cache, v_cache, k_params, v_params, k_descale, v_descale) -> KVQuant | None:
    """The cache's format (None: fp16/bf16 like ``q``); dtype errors raise ``TypeError``."""
    if v_cache.dtype != k_cache.dtype:
        raise TypeError(f"v_cache has dtype {v_cache.dtype} but k_cache has {k_cache.dtype}")
    if k_cache.dtype == q.dtype:
        for name, t in (("k_cache_params", k_params), ("v_cache_params", v_params), ("k_descale", k_descale),
                        ("v_descale", v_descale)):
            if t is not None:
                raise ValueError(f"{name} is given but the cache holds {k_cache.dtype} values, not a quantized format")
        return None
    if k_cache.dtype in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"k_cache has dtype {k_cache.dtype} but q has {q.dtype}")
    if k_cache.dtype not in (torch.int8, torch.uint8, torch.float8_e4m3fn):
        raise TypeError(f"k_cache must be {q.dtype}, int8, uint8 (int4) or float8_e4m3fn, got {k_cache.dtype}")
    if k_cache.dtype != torch.float8_e4m3fn and k_params is None:
        kind = "int8" if k_cache.dtype == torch.int8 else "int4"
        raise ValueError(f"k_cache_params is required for an {kind} cache: (scale, zero) pairs of shape "
                         f"{(*k_cache.shape[:3], 2)}")
    if k_params is not None and not isinstance(k_params, torch.Tensor):
        raise TypeError(f"k_cache_params must be a torch.Tensor, got {type(k_params).__name__}")
    try:
        return kv_quant_of(k_cache.dtype, None if k_params is None else k_params.dtype)
    except TypeError as e:
        raise TypeError(f"k_cache_params: {e}") from None


def check_kv_quant_params(fmt: KVQuant, k_cache, batch: int, k_params, v_params, k_descale, v_descale) -> None:
    """Parameter tensors of a ``fmt`` cache: int8/int4 need (scale, zero) pairs shaped like the cache with the last
    dim 2, fp8 takes optional fp32 ``(batch, nheads_kv)`` descale factors."""
    if fmt.has_params:
        for name, t in (("k_descale", k_descale), ("v_descale", v_descale)):
            if t is not None:
                raise ValueError(f"{name} belongs to fp8 caches; a {fmt.kind} cache takes k_cache_params and "
                                 "v_cache_params")
        want = (*k_cache.shape[:3], 2)
        for name, t in (("k_cache_params", k_params), ("v_cache_params", v_params)):
            if t is None:
                raise ValueError(f"{name} is required for a {fmt.kind} cache: (scale, zero) pairs of shape {want}")
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dtype != TORCH_PARAMS[fmt.param_dtype]:
                raise TypeError(f"{name} has dtype {t.dtype}, k_cache_params {TORCH_PARAMS[fmt.param_dtype]} (they "
                                "must match)")
            if tuple(t.shape) != want:
                raise ValueError(f"{name} must have shape {want} (the cache's with the last dim 2), got "
                                 f"{tuple(t.shape)}")
            if t.stride(-1) != 1 or any(s % 2 for s in t.stride()[:-1]):
                raise ValueError(f"{name} must keep each (scale, zero) pair contiguous and aligned (last stride 1, "
                                 f"the others even), got strides {t.stride()}")
        return
    for name, t in (("k_cache_params", k_params), ("v_cache_params", v_params)):
        if t is not None:
            raise ValueError(f"{name} belongs to int8/int4 caches; an fp8 cache takes k_descale and v_descale")
    want = (batch, k_cache.shape[2])
    for name, t in (("k_descale", k_descale), ("v_descale", v_descale)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != torch.float32:
            raise TypeError(f"{name} must be float32, got {t.dtype}")
        if tuple(t.shape) != want:
            raise ValueError(f"{name} must have shape (batch, nheads_kv) = {want}, got {tuple(t.shape)}")
