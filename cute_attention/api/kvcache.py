"""``attention_with_kvcache``: attention over a KV cache, contiguous or paged (FlashAttention's API).

New ``k``/``v`` are first written into their slots (``cache_seqlens[b] + i`` of sequence ``b``, through
the block table when paged) by the append kernel (:mod:`cute_attention.kernels.kv_append`); every other cache slot
is left untouched. The attention then runs over ``cache_seqlens + seqlen_new`` keys per sequence with the
kernel object, its KV cache layout swapped for the paged (or length-aware linear) one; for decode the
registry picks the PackGQA variants (one CTA per KV head serving its query heads). Nothing reads the
lengths on the host unless asked (``check_lengths``), so a decode step is launches only.
"""

from __future__ import annotations

import math

import torch

from cute_attention.api import ops
from cute_attention.api.attention import LaunchPlan
from cute_attention.api.checks import (
    MAX_GRID_YZ,
    TORCH_DTYPES,
    PlanCache,
    aligned,
    call_signature,
    check_device,
    check_no_grad,
    check_options,
    check_strides,
    check_tensor,
    resolve_variant,
    strides_ok,
)
from cute_attention.api.quant_checks import check_kv_quant, check_kv_quant_params
from cute_attention.core.masks import MaskSpec
from cute_attention.host import launcher
from cute_attention.host.registry import AttnDesc
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.variant import ALL_HEAD_DIMS, Variant, with_kv_cache, with_kv_quant
from cute_attention.kv import PAGED_BLOCK_SIZES, LinearKVCache, PagedKVCache

_PLANS = PlanCache()


def attention_with_kvcache(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cache_seqlens: torch.Tensor,
    *,
    block_table: torch.Tensor | None = None,
    k: torch.Tensor | None = None,
    v: torch.Tensor | None = None,
    softmax_scale: float | None = None,
    causal: bool = True,
    window_size: tuple[int, int] = (-1, -1),
    num_splits: int = 0,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    variant: Variant | str | None = None,
    config: str | None = None,
    check_lengths: bool = False,
    k_cache_params: torch.Tensor | None = None,
    v_cache_params: torch.Tensor | None = None,
    k_descale: torch.Tensor | None = None,
    v_descale: torch.Tensor | None = None,
):
    """Attention of ``q (batch, seqlen_q, nheads, d)`` over a KV cache.

    ``k_cache``/``v_cache``: ``(batch, seqlen_cache, nheads_kv, d)``, or with ``block_table (batch,
    max_blocks)`` int32 a paged cache ``(num_blocks, block_size, nheads_kv, d)`` (block size 16, 32, 64,
    128 or 256). ``cache_seqlens (batch,)`` int32: tokens already in each sequence's cache. Optional
    ``k``/``v (batch, seqlen_new, nheads_kv, d)`` are written at positions ``cache_seqlens[b] ..`` first
    (``cache_seqlens`` itself is not updated). ``causal``/``window_size`` align bottom-right to each
    sequence's length. ``num_splits``: 0 = from occupancy (TurboMind's cost model), 1 = one pass.
    ``variant`` forces a variant (by name or object) instead of the registry's rule; ``config`` picks the registry's
    choice within one config (default ``"sm80"``; ``"sm90"`` on sm_90 GPUs: the warp-specialized TMA kernels, which
    read a paged cache by TMA, one copy per block when blocks are smaller than their KV tile).
    The lengths stay on the device: a length past the cache's capacity is clamped to it on the device and
    appended tokens past it are dropped. ``check_lengths=True`` reads them on the host first (one
    synchronization) and raises ``ValueError`` instead. Returns ``out`` or ``(out, lse)``.

    Quantized caches (:mod:`cute_attention.kv.quant`, made by :func:`~cute_attention.quantize_kv`): ``int8``
    (int8 data), ``int4`` (uint8 data, two values a byte: last dim ``d / 2``) with ``k_cache_params`` /
    ``v_cache_params`` shaped like the caches with the last dim 2 (scale, zero; float16, bfloat16 or float32), or
    ``float8_e4m3fn`` data with optional fp32 ``k_descale`` / ``v_descale`` of shape ``(batch, nheads_kv)``
    (FlashAttention-3's; None is 1).
    """
    check_no_grad(("q", q), ("k_cache", k_cache), ("v_cache", v_cache), ("k", k), ("v", v))
    if torch.compiler.is_compiling():
        return ops.traced_kvcache(q, k_cache, v_cache, cache_seqlens, block_table, k, v, softmax_scale, causal,
                                  window_size, num_splits, return_lse, out, variant, config, check_lengths,
                                  (k_cache_params, v_cache_params, k_descale, v_descale))
    quant = (k_cache_params, v_cache_params, k_descale, v_descale)
    sig = call_signature((q, k_cache, v_cache, cache_seqlens, block_table, k, v, out, *quant),
                         (softmax_scale, causal, window_size, num_splits, return_lse, variant, config, check_lengths))
    plan = _PLANS.get(sig)
    if plan is None:
        plan = _plan(q, k_cache, v_cache, cache_seqlens, block_table, k, v, softmax_scale, causal, window_size,
                     num_splits, return_lse, out, variant, config, check_lengths, quant)
        _PLANS.put(sig, plan)
    return plan.launch(q, k_cache, v_cache, cache_seqlens, block_table, k, v, out, quant)


def _plan(q, k_cache, v_cache, cache_seqlens, block_table, k, v, softmax_scale, causal, window_size, num_splits,
          return_lse, out, variant, config, check_lengths, quant=(None,) * 4) -> KVCachePlan:
    """Validate one call signature (no tensor data involved) and choose its kernels and split count."""
    check_tensor("q", q, 4, "(batch, seqlen_q, nheads, head_dim)")
    paged = block_table is not None
    cache_dims = "(num_blocks, block_size, nheads_kv, head_dim)" if paged else "(batch, seqlen_cache, nheads_kv, d)"
    check_tensor("k_cache", k_cache, 4, cache_dims)
    check_tensor("v_cache", v_cache, 4, cache_dims)
    check_tensor("cache_seqlens", cache_seqlens, 1, "(batch,)")
    dtype = TORCH_DTYPES.get(q.dtype)
    if dtype is None:
        raise TypeError(f"q must be float16 or bfloat16, got {q.dtype}")
    fmt = check_kv_quant(q, k_cache, v_cache, *quant)
    if cache_seqlens.dtype != torch.int32:
        raise TypeError(f"cache_seqlens must be int32, got {cache_seqlens.dtype}")
    batch, seqlen_q, nheads, head_dim = q.shape
    if head_dim not in ALL_HEAD_DIMS:
        raise ValueError(f"q head_dim {head_dim} is not supported; supported: {ALL_HEAD_DIMS}")
    if tuple(k_cache.shape) != tuple(v_cache.shape):
        raise ValueError(f"k_cache shape {tuple(k_cache.shape)} and v_cache shape {tuple(v_cache.shape)} must match")
    nheads_kv = k_cache.shape[2]
    cols = head_dim if fmt is None else fmt.stored_cols(head_dim)
    if k_cache.shape[3] != cols:
        raise ValueError(f"k_cache last dim {k_cache.shape[3]} does not match q head_dim {head_dim}"
                         + ("" if fmt is None or fmt.per_byte == 1 else f" ({fmt.kind}: {cols} bytes of two values)"))
    if nheads_kv == 0 or nheads % nheads_kv:
        raise ValueError(f"q nheads {nheads} must be a multiple of k_cache nheads_kv {nheads_kv}")
    if tuple(cache_seqlens.shape) != (batch,):
        raise ValueError(f"cache_seqlens must have shape ({batch},), got {tuple(cache_seqlens.shape)}")
    if batch > 1 and cache_seqlens.stride(0) != 1:
        raise ValueError(f"cache_seqlens must be contiguous, got stride {cache_seqlens.stride()}")
    if batch == 0 or seqlen_q == 0 or nheads == 0:
        raise ValueError(f"empty problem: q shape {tuple(q.shape)}")
    if paged:
        check_tensor("block_table", block_table, 2, "(batch, max_blocks)")
        if block_table.dtype != torch.int32:
            raise TypeError(f"block_table must be int32, got {block_table.dtype}")
        if block_table.shape[0] != batch:
            raise ValueError(f"block_table batch {block_table.shape[0]} does not match q batch {batch}")
        if block_table.stride(-1) != 1:
            raise ValueError(f"block_table must have a contiguous last dim, got strides {block_table.stride()}")
        block_size = k_cache.shape[1]
        if block_size not in PAGED_BLOCK_SIZES:
            raise ValueError(f"k_cache block_size {block_size} is not supported; supported: {PAGED_BLOCK_SIZES}")
        cache = PagedKVCache(block_size)
    else:
        block_size = 0
        if k_cache.shape[0] != batch:
            raise ValueError(f"k_cache batch {k_cache.shape[0]} does not match q batch {batch}")
        cache = LinearKVCache(seqlens=True)
    capacity = cache.capacity(k_cache, block_table)  # the same rule the kernels clamp with
    if fmt is not None:
        check_kv_quant_params(fmt, k_cache, batch, *quant)
    if (k is None) != (v is None):
        raise ValueError("k and v must be given together")
    seqlen_new = 0
    if k is not None:
        check_tensor("k", k, 4, "(batch, seqlen_new, nheads_kv, head_dim)")
        check_tensor("v", v, 4, "(batch, seqlen_new, nheads_kv, head_dim)")
        for name, t in (("k", k), ("v", v)):
            if t.dtype != q.dtype:
                raise TypeError(f"{name} has dtype {t.dtype} but q has {q.dtype}")
            if t.shape[0] != batch or t.shape[2] != nheads_kv or t.shape[3] != head_dim or t.shape != k.shape:
                raise ValueError(f"{name} must have shape ({batch}, seqlen_new, {nheads_kv}, {head_dim}) like k, "
                                 f"got {tuple(t.shape)}")
        seqlen_new = k.shape[1]
        if seqlen_new > capacity:
            raise ValueError(f"k has {seqlen_new} new tokens but the cache holds at most {capacity} per sequence")
    softmax_scale, left, right = check_options(head_dim, softmax_scale, causal, window_size, return_lse, num_splits)
    if not isinstance(check_lengths, bool):
        raise TypeError(f"check_lengths must be a bool, got {type(check_lengths).__name__}")
    if out is not None:
        check_tensor("out", out, 4, "like q")
        if tuple(out.shape) != tuple(q.shape) or out.dtype != q.dtype:
            raise ValueError(f"out must have shape {tuple(q.shape)} and dtype {q.dtype}, got "
                             f"{tuple(out.shape)} {out.dtype}")
    if nheads > MAX_GRID_YZ:
        raise ValueError(f"nheads ({nheads}) must be <= {MAX_GRID_YZ}")
    check_device("q", q, None)
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache), ("cache_seqlens", cache_seqlens),
                    ("block_table", block_table), ("k", k), ("v", v), ("out", out), ("k_cache_params", quant[0]),
                    ("v_cache_params", quant[1]), ("k_descale", quant[2]), ("v_descale", quant[3])):
        if t is not None:
            check_device(name, t, q)
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache), ("out", out)):
        if t is not None:
            check_strides(name, t)

    desc = AttnDesc(head_dim, dtype, seqlen_q, capacity, causal, left >= 0 or right >= 0, nheads // nheads_kv,
                    block_size, None if fmt is None else fmt.kind)
    # no config named: the target's defaults (:func:`~cute_attention.host.registry.default_configs`: on sm_90a sm90
    # for more than 64 query rows, the sm80 decode tiles below)
    base = resolve_variant(variant, desc, config, launcher.target(), over_cache=True)
    variant = with_kv_cache(base, cache)
    if fmt is not None:
        variant = with_kv_quant(variant, fmt)
    mask = MaskSpec(has_left=left >= 0, has_right=right >= 0)
    params = AttentionParams(variant, dtype, head_dim, mask, with_lse=return_lse, softmax_scale=softmax_scale,
                             window_left=max(left, 0), window_right=max(right, 0))
    kernel, params, reduce = launcher.split_plan(
        params, num_splits, launcher.unsplit_ctas(variant, batch, seqlen_q, nheads, nheads_kv),
        math.ceil(capacity / variant.impl.tile_n), q.device.index, launcher.DECODE_WAVE_CAP,
        launcher.DECODE_CTAS_PER_SM, max_splits=max(1, MAX_GRID_YZ // batch))
    append = None
    if seqlen_new > 0:
        append = launcher.compiled(AppendParams(dtype, head_dim, block_size if paged else 0, kv_quant=fmt))
    # which read-only inputs break the stride rule (their strides are in the signature; alignment is per call)
    copies = tuple(t is not None and not strides_ok(t) for t in (q, k, v))
    return KVCachePlan(kernel, params, reduce, append, (batch, nheads, seqlen_q) if return_lse else None, seqlen_new,
                       capacity, check_lengths, copies)


class KVCachePlan(LaunchPlan):
    """:class:`~cute_attention.api.attention.LaunchPlan` plus the append kernel and the capacity check; ``copies`` flags
    (q, new k, new v). Per call only data pointers' alignment is checked (not part of the signature), and the
    lengths when ``check_lengths`` asks for it."""

    __slots__ = ("append", "seqlen_new", "capacity", "check_lengths", "unit_descale")

    def __init__(self, kernel, params: AttentionParams, reduce, append, lse_shape, seqlen_new, capacity,
                 check_lengths, copies=(False, False, False)):
        super().__init__(kernel, params, reduce, lse_shape, copies)
        self.append = append
        self.seqlen_new = seqlen_new
        self.capacity = capacity
        self.check_lengths = check_lengths
        self.unit_descale = None

    def launch(self, q, k_cache, v_cache, cache_seqlens, block_table, k, v, out, quant=(None,) * 4):
        for name, t in (("k_cache", k_cache), ("v_cache", v_cache), ("out", out)):
            if t is not None and t.data_ptr() % 16:
                raise ValueError(f"{name} must have a 16-byte aligned base pointer")
        for name, t in (("k_cache_params", quant[0]), ("v_cache_params", quant[1])):
            if t is not None and t.data_ptr() % (2 * t.element_size()):
                raise ValueError(f"{name} must have a base pointer aligned to one (scale, zero) pair")
        if self.check_lengths:
            # one synchronizing read of the lengths; without it they are clamped to the capacity on the device
            longest, shortest = torch.stack([cache_seqlens.max(), cache_seqlens.min()]).tolist()
            if shortest < 0:
                raise ValueError(f"cache_seqlens must be >= 0, got a minimum of {shortest}")
            if longest + self.seqlen_new > self.capacity:
                raise ValueError(f"cache_seqlens + seqlen_new reaches {longest + self.seqlen_new} tokens, past the "
                                 f"cache's capacity of {self.capacity} per sequence")
        fmt = self.params.variant.kv_quant
        if fmt is not None and fmt.kind == "fp8" and (quant[2] is None or quant[3] is None):
            # no descale: factors of 1, one tensor per plan (made once, so CUDA graphs capture no allocation)
            if self.unit_descale is None:
                self.unit_descale = torch.ones((q.shape[0], k_cache.shape[2]), dtype=torch.float32, device=q.device)
            quant = (None, None, *(self.unit_descale if t is None else t for t in quant[2:]))
        # ---- append the new tokens on the device (only their slots; positions past the capacity are skipped) ----
        seqlens_k = cache_seqlens
        if self.append is not None:
            launcher.launch(self.append, k.device, AppendParams.launch_args(
                aligned(k, self.copies[1]), aligned(v, self.copies[2]), k_cache, v_cache, block_table, cache_seqlens,
                quant))
            seqlens_k = cache_seqlens + self.seqlen_new
        q = aligned(q, self.copies[0])
        if out is None:
            out = torch.empty_like(q)
        return launcher.run(self.kernel, self.params, self.reduce, q, k_cache, v_cache, out, self.lse_shape,
                            block_table, seqlens_k, kv_quant=quant)
