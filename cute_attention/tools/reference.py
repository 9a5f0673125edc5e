"""Reference attention (fp32 upcast, torch; float64 numpy) and FlashAttention's pass rule for low-precision output."""

from __future__ import annotations

import math

import numpy as np
import torch


def visibility_mask(seqlen_q: int, seqlen_k: int, causal: bool, window_size=(-1, -1), device=None) -> torch.Tensor:
    """Bool ``(seqlen_q, seqlen_k)``: True where query i sees key j (bottom-right aligned)."""
    left, right = window_size
    if causal:
        right = 0
    i = torch.arange(seqlen_q, device=device)[:, None] + (seqlen_k - seqlen_q)
    j = torch.arange(seqlen_k, device=device)[None, :]
    vis = torch.ones(seqlen_q, seqlen_k, dtype=torch.bool, device=device)
    if right >= 0:
        vis &= j <= i + right
    if left >= 0:
        vis &= j >= i - left
    return vis


def attention_ref(q, k, v, *, causal=False, window_size=(-1, -1), softmax_scale=None, upcast=True):
    """Attention in fp32 (``upcast``) or in the inputs' dtype; returns ``(out, lse)``.

    Rows that see no key give 0 and LSE ``-inf``. ``out`` is float32 when ``upcast``.
    """
    d = q.shape[-1]
    scale = d**-0.5 if softmax_scale is None else softmax_scale
    if upcast:
        q, k, v = q.float(), k.float(), v.float()
    group = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    s = torch.einsum("bqhd,bkhd->bhqk", q, k).float() * scale
    vis = visibility_mask(q.shape[1], k.shape[1], causal, window_size, device=q.device)
    s = s.masked_fill(~vis, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse[..., None].masked_fill(torch.isinf(lse[..., None]), 0.0))
    p = p.masked_fill(~vis, 0.0)
    out = torch.einsum("bhqk,bkhd->bqhd", p.to(v.dtype), v)
    return out, lse


def attention_numpy(q, k, v, *, causal=False, window_size=(-1, -1), softmax_scale=None):
    """Naive float64 loops (CPU, small inputs): the reference of the reference."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    b, sq, h, d = q.shape
    sk, hkv = k.shape[1], k.shape[2]
    scale = d**-0.5 if softmax_scale is None else softmax_scale
    left, right = window_size
    if causal:
        right = 0
    out = np.zeros((b, sq, h, d))
    lse = np.full((b, h, sq), -np.inf)
    for bi in range(b):
        for hi in range(h):
            kh = hi // (h // hkv)
            for i in range(sq):
                pos = i + sk - sq
                cols = [j for j in range(sk) if (right < 0 or j <= pos + right) and (left < 0 or j >= pos - left)]
                if not cols:
                    continue
                s = np.array([q[bi, i, hi] @ k[bi, j, kh] * scale for j in cols])
                m = s.max()
                e = np.exp(s - m)
                lse[bi, hi, i] = m + math.log(e.sum())
                out[bi, i, hi] = (e[:, None] * v[bi, cols, kh]).sum(0) / e.sum()
    return out, lse


def tolerance_check(out, q, k, v, *, causal=False, window_size=(-1, -1), softmax_scale=None):
    """FlashAttention's rule: ``max|out − ref| ≤ 2·max|out_torch_lowprec − ref| + 2·(rounding of ref)``.

    Returns ``(ok, max_err, bound)``; NaN anywhere fails.
    """
    ref, _ = attention_ref(q, k, v, causal=causal, window_size=window_size, softmax_scale=softmax_scale)
    low, _ = attention_ref(q, k, v, causal=causal, window_size=window_size, softmax_scale=softmax_scale,
                           upcast=False)
    noise = (ref.to(out.dtype).float() - ref).abs().max().item()
    bound = 2 * (low.float() - ref).abs().max().item() + 2 * noise
    err = (out.float() - ref).abs().max().item()
    ok = bool(torch.isfinite(out).all().item()) and err <= bound
    return ok, err, bound
