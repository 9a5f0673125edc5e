"""Where a decode call's time goes: per-kernel GPU time and the gaps between kernels (torch.profiler).

One decode call of ``attention_with_kvcache`` (paged, bf16, d128) is replayed ``--calls`` times under the
profiler; for each CUDA kernel name the median duration is printed, and the median span from the first kernel's
start to the last kernel's end of a call (launch gaps included). SDPA on the same data for comparison.

    python benchmarks/profile_decode.py --case 1x8192 --heads 32/8 [--splits 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import environment, write_json  # noqa: E402
from decode import paged_copy  # noqa: E402

from cute_attention import attention_with_kvcache  # noqa: E402


def kernel_events(fn, calls: int) -> list[list[tuple[str, float, float]]]:
    """Per call, the (name, start µs, duration µs) of its CUDA kernels, from the profiler's trace."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
            torch.cuda.synchronize()  # calls are separated by idle gaps on the GPU
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    # split the kernel stream into calls at gaps longer than 50 µs (the synchronizations between calls)
    calls_out, current, last_end = [], [], None
    for e in kernels:
        start, dur = e.time_range.start, e.time_range.elapsed_us()
        if last_end is not None and start - last_end > 50 and current:
            calls_out.append(current)
            current = []
        current.append((e.name, start, dur))
        last_end = start + dur
    if current:
        calls_out.append(current)
    return calls_out


def summarize(calls: list[list[tuple[str, float, float]]]) -> dict:
    by_name: dict[str, list[float]] = {}
    spans = []
    for call in calls:
        for name, _, dur in call:
            by_name.setdefault(name, []).append(dur)
        spans.append(call[-1][1] + call[-1][2] - call[0][1])
    return {"span_us": statistics.median(spans),
            "kernels_us": {n[:80]: statistics.median(v) for n, v in by_name.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="1x8192", help="BATCHxCONTEXT")
    ap.add_argument("--heads", default="32/8")
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--splits", type=int, default=0)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    b, n = map(int, args.case.split("x"))
    h, hkv = map(int, args.heads.split("/"))
    d = 128
    q = torch.randn(b, 1, h, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, n, hkv, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    seqlens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    kc, table = paged_copy(k, args.block)
    vc = torch.empty_like(kc)
    vc[table.long().flatten()] = v.reshape(-1, args.block, hkv, d)
    qs, ks, vs = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    fns = {
        "ours": lambda: attention_with_kvcache(q, kc, vc, seqlens, block_table=table, num_splits=args.splits),
        "sdpa": lambda: torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True),
    }
    kv_gb = 2 * b * n * hkv * d * 2 / 1e9
    report = {"env": environment(), "case": [b, n, h, hkv, args.block, args.splits], "results": {}}
    for name, fn in fns.items():
        s = summarize(kernel_events(fn, args.calls))
        report["results"][name] = s
        print(f"{name}: span {s['span_us']:.1f} us ({kv_gb / s['span_us'] * 1e6:.0f} GB/s over the span)")
        for kname, us in s["kernels_us"].items():
            print(f"    {us:8.1f} us  {kname}")
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
