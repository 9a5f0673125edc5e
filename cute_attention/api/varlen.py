"""``attention_varlen``: prefill attention over a ragged batch (FlashAttention's varlen layout).

Sequences are packed along one token axis: q ``(total_q, nheads, d)``, k/v ``(total_k, nheads_kv, d)``, sequence
``b`` owning rows ``cu_seqlens_q[b] .. cu_seqlens_q[b + 1]`` of q (and likewise of k/v). The kernel is the
attention kernel object with its varlen flag (:mod:`cute_attention.kv.ragged`): every CTA rebases the packed
tensors onto its sequence's rows, the grid is sized by ``max_seqlen_q`` and CTAs past a sequence's end exit.
"""

from __future__ import annotations

import math

import torch

from cute_attention.api import ops
from cute_attention.api.attention import LaunchPlan
from cute_attention.api.checks import (
    MAX_GRID_YZ,
    PlanCache,
    call_signature,
    check_device,
    check_no_grad,
    check_options,
    check_out,
    check_qkv,
    check_strides,
    check_tensor,
    resolve_variant,
    strides_ok,
)
from cute_attention.core.masks import MaskSpec
from cute_attention.host import launcher
from cute_attention.host.registry import AttnDesc
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.variant import Variant

_PLANS = PlanCache()


def attention_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    *,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    variant: Variant | str | None = None,
    config: str | None = None,
    num_splits: int = 1,
    check_seqlens: bool = True,
):
    """Attention of each packed sequence over its own keys.

    q: ``(total_q, nheads, d)``; k, v: ``(total_k, nheads_kv, d)``; ``cu_seqlens_q`` / ``cu_seqlens_k``:
    ``(batch + 1,)`` int32, starting at 0, non-decreasing, ending at ``total_q`` / ``total_k``; ``max_seqlen_q`` /
    ``max_seqlen_k``: at least the longest sequence (the grid is sized by ``max_seqlen_q``). Zero-length sequences
    are allowed (a query with no keys gives 0 and LSE ``-inf``). Masks align bottom-right within each sequence
    (see :func:`~cute_attention.attention`). ``check_seqlens`` reads the offsets on the host (one synchronization;
    skipped while a CUDA graph is being captured) and raises ``ValueError`` when they break those rules. Returns
    ``out`` ``(total_q, nheads, d)`` or ``(out, lse)`` with ``lse`` float32 ``(nheads, total_q)``.
    """
    check_no_grad(("q", q), ("k", k), ("v", v))
    if torch.compiler.is_compiling():
        return ops.traced_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale,
                                 causal, window_size, return_lse, out, variant, config, num_splits, check_seqlens)
    sig = call_signature((q, k, v, cu_seqlens_q, cu_seqlens_k, out),
                         (max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_size, return_lse, variant, config,
                          num_splits, check_seqlens))
    plan = _PLANS.get(sig)
    if plan is None:
        plan = _plan(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal,
                     window_size, return_lse, out, variant, config, num_splits, check_seqlens)
        _PLANS.put(sig, plan)
    return plan.launch(q, k, v, cu_seqlens_q, cu_seqlens_k, out)


def _check_cu(name: str, cu, batch: int | None) -> int:
    check_tensor(name, cu, 1, "(batch + 1,)")
    if cu.dtype != torch.int32:
        raise TypeError(f"{name} must be int32, got {cu.dtype}")
    if cu.shape[0] < 2:
        raise ValueError(f"{name} must hold batch + 1 >= 2 offsets, got shape {tuple(cu.shape)}")
    if batch is not None and cu.shape[0] != batch + 1:
        raise ValueError(f"{name} has {cu.shape[0]} offsets but cu_seqlens_q has {batch + 1}")
    if cu.stride(0) != 1:
        raise ValueError(f"{name} must be contiguous, got stride {cu.stride()}")
    return cu.shape[0] - 1


def _check_max(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _plan(q, k, v, cu_q, cu_k, max_seqlen_q, max_seqlen_k, softmax_scale, causal, window_size, return_lse, out,
          variant, config, num_splits, check_seqlens) -> VarlenPlan:
    """Validate one call signature (no tensor data involved) and choose its kernel."""
    dtype, head_dim, nheads, nheads_kv = check_qkv(q, k, v, "(total, nheads, head_dim)")
    total_q, total_k = q.shape[0], k.shape[0]
    if total_q == 0 or total_k == 0 or nheads == 0:
        raise ValueError(f"empty problem: q shape {tuple(q.shape)}, k shape {tuple(k.shape)}")
    if nheads > MAX_GRID_YZ:
        raise ValueError(f"nheads ({nheads}) must be <= {MAX_GRID_YZ}")
    batch = _check_cu("cu_seqlens_q", cu_q, None)
    _check_cu("cu_seqlens_k", cu_k, batch)
    if batch > MAX_GRID_YZ:
        raise ValueError(f"batch ({batch}) must be <= {MAX_GRID_YZ}")
    max_seqlen_q = _check_max("max_seqlen_q", max_seqlen_q)
    max_seqlen_k = _check_max("max_seqlen_k", max_seqlen_k)
    if max_seqlen_q == 0:
        raise ValueError("max_seqlen_q must be >= 1")
    if not isinstance(check_seqlens, bool):
        raise TypeError(f"check_seqlens must be a bool, got {type(check_seqlens).__name__}")
    softmax_scale, left, right = check_options(head_dim, softmax_scale, causal, window_size, return_lse, num_splits)
    check_out(out, q, "(total, nheads, head_dim)")
    if out is not None:
        check_strides("out", out)
    check_device("q", q, None)
    for name, t in (("k", k), ("v", v), ("out", out), ("cu_seqlens_q", cu_q), ("cu_seqlens_k", cu_k)):
        if t is not None:
            check_device(name, t, q)
    mask = MaskSpec(has_left=left >= 0, has_right=right >= 0)
    desc = AttnDesc(head_dim, dtype, max_seqlen_q, max(max_seqlen_k, 1), causal, left >= 0 or right >= 0,
                    nheads // nheads_kv)
    chosen = resolve_variant(variant, desc, config, launcher.target())
    copies = tuple(not strides_ok(t) for t in (q, k, v))
    params = AttentionParams(chosen, dtype, head_dim, mask, with_lse=return_lse, varlen=True,
                             softmax_scale=softmax_scale, window_left=max(left, 0), window_right=max(right, 0))
    kernel, params, reduce = launcher.split_plan(
        params, num_splits, launcher.unsplit_ctas(chosen, batch, max_seqlen_q, nheads, nheads_kv),
        math.ceil(max(max_seqlen_k, 1) / chosen.impl.tile_n), q.device.index, launcher.prefill_wave_cap(chosen),
        max_splits=max(1, MAX_GRID_YZ // batch))
    return VarlenPlan(kernel, params, reduce, return_lse, copies, max_seqlen_q, max_seqlen_k,
                      check_seqlens)


class VarlenPlan(LaunchPlan):
    """:class:`~cute_attention.api.attention.LaunchPlan` of a varlen signature (its LSE's shape follows each call's
    packed total) plus the host check of the offsets."""

    __slots__ = ("return_lse", "max_seqlen_q", "max_seqlen_k", "check_seqlens")

    def __init__(self, kernel, params, reduce, return_lse, copies, max_seqlen_q, max_seqlen_k, check_seqlens):
        super().__init__(kernel, params, reduce, None, copies)
        self.return_lse = return_lse
        self.max_seqlen_q = max_seqlen_q
        self.max_seqlen_k = max_seqlen_k
        self.check_seqlens = check_seqlens

    def check_offsets(self, cu_q, cu_k, total_q: int, total_k: int) -> None:
        """One synchronizing read of both offset tensors' first, last, smallest and largest steps."""
        dq, dk = cu_q.diff(), cu_k.diff()
        first_q, last_q, min_q, max_q, first_k, last_k, min_k, max_k = torch.stack(
            [cu_q[0], cu_q[-1], dq.min(), dq.max(), cu_k[0], cu_k[-1], dk.min(), dk.max()]).tolist()
        for name, first, last, low, high, total, cap in (
                ("cu_seqlens_q", first_q, last_q, min_q, max_q, total_q, self.max_seqlen_q),
                ("cu_seqlens_k", first_k, last_k, min_k, max_k, total_k, self.max_seqlen_k)):
            if first != 0:
                raise ValueError(f"{name} must start at 0, got {first}")
            if low < 0:
                raise ValueError(f"{name} must be non-decreasing (a sequence length of {low} found)")
            if last != total:
                raise ValueError(f"{name} must end at the packed total {total}, got {last}")
            if high > cap:
                raise ValueError(f"{name} holds a sequence of {high} tokens, longer than max_seqlen_"
                                 f"{name[-1]} = {cap}")

    def launch(self, q, k, v, cu_q, cu_k, out):
        if self.check_seqlens and not torch.cuda.is_current_stream_capturing():
            self.check_offsets(cu_q, cu_k, q.shape[0], k.shape[0])
        q, k, v, out = self.prepare(q, k, v, out)
        lse_shape = (1, q.shape[1], q.shape[0]) if self.return_lse else None
        result = launcher.run(self.kernel, self.params, self.reduce, q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0),
                              out.unsqueeze(0), lse_shape,
                              varlen=(cu_q, cu_k, self.max_seqlen_q))
        return (out, result[1][0]) if self.return_lse else out
