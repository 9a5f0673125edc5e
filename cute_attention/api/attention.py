"""``attention(q, k, v, ...)``: prefill attention over BSHD tensors with FlashAttention's conventions.

Input layout: q/k/v whose last dim is not contiguous, whose base is not 16-byte aligned, or whose
other strides are not multiples of 8 elements (or are 0, broadcast) are copied to a contiguous
tensor first. ``out`` is never copied: it must meet those rules or the call raises.
"""

from __future__ import annotations

import math

import torch

from cute_attention.api import ops
from cute_attention.api.checks import (
    MAX_GRID_YZ,
    PlanCache,
    aligned,
    call_signature,
    check_device,
    check_no_grad,
    check_options,
    check_out,
    check_qkv,
    check_strides,
    resolve_variant,
    strides_ok,
)
from cute_attention.core.masks import MaskSpec
from cute_attention.host import launcher
from cute_attention.host.registry import AttnDesc
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.variant import Variant

_PLANS = PlanCache()


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    variant: Variant | str | None = None,
    config: str | None = None,
    num_splits: int = 1,
):
    """Scaled dot-product attention over BSHD tensors.

    q: ``(batch, seqlen_q, nheads, head_dim)``; k, v: ``(batch, seqlen_k, nheads_kv, head_dim)``
    with ``nheads % nheads_kv == 0`` (GQA/MQA: query head ``i`` uses kv head ``i // (nheads // nheads_kv)``).
    ``causal`` and ``window_size=(left, right)`` are aligned bottom-right (query ``i`` sits at key
    position ``i + seqlen_k - seqlen_q``); ``-1`` leaves a side unbounded; ``causal`` sets ``right = 0``.
    Rows that see no key give 0 (and LSE ``-inf``). Returns ``out`` or ``(out, lse)`` with ``lse`` the
    natural-log sum of exponentials, float32 ``(batch, nheads, seqlen_q)``.
    ``config`` picks the generation whose algorithm runs (``"sm80"``: cp.async + m16n8k16, the default;
    ``"sm75"``: synchronous loads + m16n8k8; ``"sm70"``: synchronous loads + m8n8k4, float16 only;
    ``"simt"``: synchronous loads + CUDA-core FMA; see ``REGISTRY.configs()``); the DSL emits sm_80+ code
    for all of them. ``variant`` forces a registered variant (by name) or a composed :class:`Variant`.
    ``num_splits`` splits every query tile's KV range into that many chunks run by separate CTAs, merged
    exactly by the reduction kernel (split-K); ``0`` picks the count from the kernel's occupancy and the
    SM count (TurboMind's cost model); ``1`` is a single pass.
    """
    check_no_grad(("q", q), ("k", k), ("v", v))
    if torch.compiler.is_compiling():
        return ops.traced_attention(q, k, v, softmax_scale, causal, window_size, return_lse, out, variant, config,
                                    num_splits)
    sig = call_signature((q, k, v, out), (softmax_scale, causal, window_size, return_lse, variant, config, num_splits))
    plan = _PLANS.get(sig)
    if plan is None:
        plan = _plan(q, k, v, softmax_scale, causal, window_size, return_lse, out, variant, config, num_splits)
        _PLANS.put(sig, plan)
    return plan.launch(q, k, v, out)


def _plan(q, k, v, softmax_scale, causal, window_size, return_lse, out, variant, config, num_splits) -> LaunchPlan:
    """Validate one call signature (no tensor data involved) and choose its kernel."""

    dtype, head_dim, nheads, nheads_kv = check_qkv(q, k, v, "(batch, seqlen, nheads, head_dim)")
    batch, seqlen_q, seqlen_k = q.shape[0], q.shape[1], k.shape[1]
    if batch == 0 or nheads == 0 or seqlen_q == 0 or seqlen_k == 0:
        raise ValueError(f"empty problem: q shape {tuple(q.shape)}, k shape {tuple(k.shape)}")
    if nheads > MAX_GRID_YZ or batch > MAX_GRID_YZ:
        raise ValueError(f"nheads ({nheads}) and batch ({batch}) must be <= {MAX_GRID_YZ}")
    softmax_scale, left, right = check_options(head_dim, softmax_scale, causal, window_size, return_lse, num_splits)
    check_out(out, q, "(batch, seqlen, nheads, head_dim)")
    if batch * num_splits > MAX_GRID_YZ:
        raise ValueError(f"batch * num_splits ({batch} * {num_splits}) must be <= {MAX_GRID_YZ}")
    mask = MaskSpec(has_left=left >= 0, has_right=right >= 0)
    desc = AttnDesc(head_dim, dtype, seqlen_q, seqlen_k, causal, left >= 0 or right >= 0, nheads // nheads_kv)
    chosen = resolve_variant(variant, desc, config, launcher.target())
    check_device("q", q, None)
    for name, t in (("k", k), ("v", v), ("out", out)):
        if t is not None:
            check_device(name, t, q)
    if out is not None:
        check_strides("out", out)
    copies = tuple(not strides_ok(t) for t in (q, k, v))
    lse_shape = (batch, nheads, seqlen_q) if return_lse else None
    params = AttentionParams(chosen, dtype, head_dim, mask, with_lse=return_lse, softmax_scale=softmax_scale,
                             window_left=max(left, 0), window_right=max(right, 0))
    kernel, params, reduce = launcher.split_plan(
        params, num_splits, launcher.unsplit_ctas(chosen, batch, seqlen_q, nheads, nheads_kv),
        math.ceil(seqlen_k / chosen.impl.tile_n), q.device.index, launcher.prefill_wave_cap(chosen),
        max_splits=max(1, MAX_GRID_YZ // batch))
    return LaunchPlan(kernel, params, reduce, lse_shape, copies)


class LaunchPlan:
    """A validated call signature: its compiled kernel and parameter record (runtime scalars included), with split-K
    the reduction kernel. Per call only the data pointers' alignment is checked (it is not part of the signature)."""

    __slots__ = ("kernel", "params", "reduce", "lse_shape", "copies")

    def __init__(self, kernel, params: AttentionParams, reduce, lse_shape, copies):
        self.kernel = kernel
        self.params = params
        self.reduce = reduce
        self.lse_shape = lse_shape
        self.copies = copies

    def prepare(self, q, k, v, out):
        """Copy inputs that break the kernels' layout rules; allocate ``out`` or check its alignment."""
        cq, ck, cv = self.copies
        q, k, v = aligned(q, cq), aligned(k, ck), aligned(v, cv)
        if out is None:
            out = torch.empty_like(q)
        elif out.data_ptr() % 16:
            raise ValueError("out must have a 16-byte aligned base pointer")
        return q, k, v, out

    def launch(self, q, k, v, out):
        q, k, v, out = self.prepare(q, k, v, out)
        return launcher.run(self.kernel, self.params, self.reduce, q, k, v, out, self.lse_shape)
