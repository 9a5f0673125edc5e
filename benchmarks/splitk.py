"""Split-K on a chunked-prefill shape: few query tiles over a very long KV range.

b1 h32 sq128 sk128k d128 (the issue's shape; more with ``--sk`` / ``--d``): one query tile per head gives 32 CTAs on a
132-SM GPU, so an unsplit kernel leaves three quarters of the chip idle. Ours with the launcher's split count
(``num_splits=0``), with fixed counts, and unsplit, against FlashAttention-4 (no split-K on sm90), SDPA cuDNN and SDPA
FLASH, in one process on the same inputs; TFLOP/s and ratios to FA4. Each of our calls is checked against the fp32
reference on a slice of heads first.

    python benchmarks/splitk.py --json out.json
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_interleaved, environment, fa4_peer, runnable_only, sdpa_peers, write_json  # noqa: E402

from cute_attention import attention  # noqa: E402
from cute_attention.tools.reference import tolerance_check  # noqa: E402


def check(q, k, v, causal: bool, num_splits: int) -> float:
    """FlashAttention's tolerance rule on 2 of the heads (the fp32 reference of the whole KV range is large);
    raises if it fails."""
    q, k, v = q[:, :, :2].contiguous(), k[:, :, :2].contiguous(), v[:, :, :2].contiguous()
    out = torch.full_like(q, float("nan"))
    attention(q, k, v, causal=causal, num_splits=num_splits, out=out)
    ok, err, bound = tolerance_check(out, q, k, v, causal=causal)
    if not ok:
        raise AssertionError(f"num_splits={num_splits} causal={causal}: max error {err} > {bound}")
    return err


def run_case(b: int, h: int, sq: int, sk: int, d: int, causal: bool, dtype, splits: list[int], rounds: int) -> dict:
    q = torch.randn(b, sq, h, d, device="cuda", dtype=dtype)
    k = torch.randn(b, sk, h, d, device="cuda", dtype=dtype)
    v = torch.randn(b, sk, h, d, device="cuda", dtype=dtype)
    flops = 4 * b * h * sq * sk * d
    if causal:
        flops = 4 * b * h * d * sum(max(0, min(sk, i + sk - sq + 1)) for i in range(sq))
    fns = {}
    errs = {}
    for s in splits:
        name = "ours_auto" if s == 0 else f"ours_s{s}"
        errs[name] = check(q, k, v, causal, s)
        fns[name] = (lambda s=s: attention(q, k, v, causal=causal, num_splits=s))
    fa4 = fa4_peer(causal)
    if fa4 is not None:
        fns["fa4"] = lambda: fa4(q, k, v)
    if not causal or sq == sk:  # SDPA's is_causal aligns the mask top-left: another problem when sq != sk
        for name, fn in sdpa_peers(causal).items():
            fns[name] = (lambda fn=fn: fn(q, k, v))
    results: dict = {}
    ok = runnable_only(fns, results)
    for name, r in bench_interleaved(ok, rounds=rounds).items():
        results[name] = {**r, "tflops": flops / r["ms"] * 1e-9, "max_abs_err": errs.get(name)}
    fa4_ms = results.get("fa4", {}).get("ms")
    for r in results.values():
        if fa4_ms and "ms" in r:
            r["vs_fa4"] = fa4_ms / r["ms"]
    return {"b": b, "h": h, "sq": sq, "sk": sk, "d": d, "causal": causal, "dtype": str(dtype).split(".")[-1],
            "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sk", type=int, nargs="+", default=[131072])
    ap.add_argument("--d", type=int, nargs="+", default=[128])
    ap.add_argument("--dtype", nargs="+", default=["bfloat16", "float16"])
    ap.add_argument("--splits", type=int, nargs="+", default=[0, 1, 4, 8])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    cases = []
    for d in a.d:
        for sk in a.sk:
            for dt in a.dtype:
                for causal in (False, True):
                    cases.append(run_case(1, 32, 128, sk, d, causal, getattr(torch, dt), a.splits, a.rounds))
    if a.json:
        write_json(a.json, {"env": environment(), "cases": cases})
    names = list(dict.fromkeys(n for c in cases for n in c["results"]))
    print(f"{'d':>4} {'sk':>7} {'dtype':>9} {'causal':>6}  " + "  ".join(f"{n:>16}" for n in names))
    for c in cases:
        row = []
        for n in names:
            r = c["results"].get(n, {})
            row.append(f"{r['tflops']:7.1f} {r.get('vs_fa4', 0):4.2f}x" if "tflops" in r else "error" if r else "-")
        print(f"{c['d']:>4} {c['sk']:>7} {c['dtype']:>9} {str(c['causal']):>6}  " + "  ".join(f"{x:>16}" for x in row))
    worst = max((r.get("max_abs_err") or 0) for c in cases for r in c["results"].values())
    print(f"checked against the fp32 reference (2 heads): worst max |err| {worst:.2e}")


if __name__ == "__main__":
    main()
