"""Varlen prefill on a realistic ragged mix against FlashAttention-4's varlen and a padded batch of ours.

The mix: 64 sequences with lengths drawn log-uniformly from 32–8192 (fixed seed), 32 query / 8 KV heads, d128, bf16,
causal and not. Reported per case: our varlen and FA4's varlen in TFLOP/s on the real tokens (FLOPs of the visible
(query, key) pairs only), and our padded batch (every sequence padded to the longest) both on its own FLOPs (the
kernel's efficiency on a uniform batch) and on the real ones (what padding costs). A second case with 64 equal
lengths (2048) compares varlen and the padded batch on identical work. Timings are medians, interleaved, in one
process on the same inputs.

    python benchmarks/varlen.py --json out.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_interleaved, environment, runnable_only, write_json  # noqa: E402

from cute_attention import attention, attention_varlen  # noqa: E402


def visible_pairs(sq: int, sk: int, causal: bool) -> int:
    """(query, key) pairs a sequence computes: all, or bottom-right causal ones."""
    if not causal:
        return sq * sk
    return sum(max(0, min(sk, i + sk - sq + 1)) for i in range(sq))


def lengths(kind: str, n: int = 64) -> list[int]:
    if kind == "equal":
        return [2048] * n
    g = torch.Generator().manual_seed(0)
    u = torch.rand(n, generator=g)
    return [int(round(math.exp(math.log(32) + x * (math.log(8192) - math.log(32))))) for x in u.tolist()]


def fa4_varlen():
    try:
        from flash_attn.cute import flash_attn_varlen_func
    except Exception:  # noqa: BLE001 - FA4 not importable: no peer
        return None
    return flash_attn_varlen_func


def run_case(kind: str, causal: bool, h: int = 32, hkv: int = 8, d: int = 128, dtype=torch.bfloat16) -> dict:
    lens = lengths(kind)
    total, longest = sum(lens), max(lens)
    cu = torch.tensor([0] + torch.tensor(lens).cumsum(0).tolist(), dtype=torch.int32, device="cuda")
    q = torch.randn(total, h, d, device="cuda", dtype=dtype)
    k = torch.randn(total, hkv, d, device="cuda", dtype=dtype)
    v = torch.randn(total, hkv, d, device="cuda", dtype=dtype)
    b = len(lens)
    qp = torch.randn(b, longest, h, d, device="cuda", dtype=dtype)
    kp = torch.randn(b, longest, hkv, d, device="cuda", dtype=dtype)
    vp = torch.randn(b, longest, hkv, d, device="cuda", dtype=dtype)
    real = 4 * h * d * sum(visible_pairs(n, n, causal) for n in lens)
    padded = 4 * h * d * b * visible_pairs(longest, longest, causal)
    fns = {
        "ours_varlen": lambda: attention_varlen(q, k, v, cu, cu, longest, longest, causal=causal, check_seqlens=False),
        "ours_padded": lambda: attention(qp, kp, vp, causal=causal),
    }
    fa4 = fa4_varlen()
    if fa4 is not None:
        fns["fa4_varlen"] = lambda: fa4(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=longest,
                                        max_seqlen_k=longest, causal=causal)
    result = {"kind": kind, "causal": causal, "sequences": b, "total_tokens": total, "longest": longest,
              "heads": [h, hkv], "d": d, "real_flops": real, "padded_flops": padded}
    timed = bench_interleaved(runnable_only(fns, result))
    for name, t in timed.items():
        result[name] = {"ms": t["ms"], "tflops_real": real / (t["ms"] * 1e-3) / 1e12}
    if "ours_padded" in timed:
        result["ours_padded"]["tflops_own"] = padded / (timed["ours_padded"]["ms"] * 1e-3) / 1e12
    if "ours_varlen" in timed and "ours_padded" in timed:
        result["varlen_over_padded_efficiency"] = (result["ours_varlen"]["tflops_real"]
                                                   / result["ours_padded"]["tflops_own"])
    if "ours_varlen" in timed and "fa4_varlen" in timed:
        result["ours_over_fa4"] = result["ours_varlen"]["tflops_real"] / result["fa4_varlen"]["tflops_real"]
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = [run_case(kind, causal) for kind in ("mix", "equal") for causal in (False, True)]
    if args.json:
        write_json(args.json, {"env": environment(), "cases": rows})
    print(f"{'case':14} {'tokens':>7} {'varlen TF/s':>11} {'FA4 TF/s':>9} {'ours/FA4':>8} {'padded own':>10} "
          f"{'padded real':>11} {'varlen/padded eff':>17}")
    for r in rows:
        name = f"{r['kind']}{' causal' if r['causal'] else ''}"
        get = lambda key, sub="tflops_real", rr=r: rr.get(key, {}).get(sub, float("nan"))  # noqa: E731
        print(f"{name:14} {r['total_tokens']:>7} {get('ours_varlen'):>11.0f} {get('fa4_varlen'):>9.0f} "
              f"{r.get('ours_over_fa4', float('nan')):>8.2f} {get('ours_padded', 'tflops_own'):>10.0f} "
              f"{get('ours_padded'):>11.0f} {r.get('varlen_over_padded_efficiency', float('nan')):>17.2f}")


if __name__ == "__main__":
    main()
