"""Where a decode call's time goes: per-kernel GPU time and the span of one call (torch.profiler).

One decode call of ``attention_with_kvcache`` (paged, bf16, d128) is queued ``--calls`` times behind a GPU
sleep, so the host's launch work is hidden and the span from the first kernel's start to the last kernel's
end is GPU time only (launch gaps between kernels included). Three L2 states before each call: warm (the
call's data left by the previous call), flushed as ``do_bench`` does (a 256 MB ``zero_``, which leaves the L2
full of dirty lines, written back while the call reads) and flushed clean (a 256 MB read). Printed: each
kernel's median duration, the median span, the ``do_bench`` time, the CUDA-graph time and the host µs per
call. torch SDPA peers on the same data.

    python benchmarks/profile_decode.py --case 1x8192 --heads 32/8 [--splits 0,16] [--only ours:s0,sdpa]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_ms, environment, graph_ms, host_us_per_call, write_json  # noqa: E402
from decode import paged_copy  # noqa: E402

from cute_attention import attention_with_kvcache  # noqa: E402

SLEEP_CYCLES = 400_000  # ~0.2 ms: longer than the host needs to queue one call


def _profiled_kernels(body) -> list:
    """The CUDA kernel events of ``body()`` under the profiler, by start time."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        body()
        torch.cuda.synchronize()
    return sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                  key=lambda e: e.time_range.start)


def kernel_events(fn, calls: int, flush=None) -> list[list[tuple[str, float, float]]]:
    """Per call, the (name, start µs, duration µs) of its CUDA kernels, each call queued behind a sleep and
    ``flush()``, whose kernels (named by profiling it alone) are left out."""
    flush_names = {e.name for e in _profiled_kernels(flush)} if flush is not None else set()

    def body():
        for _ in range(calls):
            torch.cuda._sleep(SLEEP_CYCLES)
            if flush is not None:
                flush()
            fn()
            torch.cuda.synchronize()

    fn()
    out, current = [], None
    for e in _profiled_kernels(body):
        if "sleep" in e.name or "spin" in e.name:  # the marker between calls
            current = []
            out.append(current)
        elif current is not None and e.name not in flush_names:
            current.append((e.name, e.time_range.start, e.time_range.elapsed_us()))
    return [c for c in out if c]


def summarize(calls: list[list[tuple[str, float, float]]]) -> dict:
    by_name: dict[str, list[float]] = {}
    spans = []
    for call in calls:
        for name, _, dur in call:
            by_name.setdefault(name, []).append(dur)
        spans.append(max(s + d for _, s, d in call) - call[0][1])
    return {"span_us": statistics.median(spans), "kernels_per_call": statistics.median(len(c) for c in calls),
            "kernels_us": {n[:90]: statistics.median(v) for n, v in by_name.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="1x8192", help="BATCHxCONTEXT")
    ap.add_argument("--heads", default="32/8")
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--splits", default="0", help="comma list of split counts for ours")
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--only", default=None, help="comma list of candidates (e.g. ours:s0,sdpa)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from torch.nn.attention import SDPBackend, sdpa_kernel

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

    def sdpa(backend):
        def run():
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)
        return run

    fns = {f"ours:s{s}": (lambda s_: lambda: attention_with_kvcache(q, kc, vc, seqlens, block_table=table,
                                                                    num_splits=s_))(int(s))
           for s in args.splits.split(",")}
    fns["sdpa"] = lambda: torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)
    fns["sdpa_flash"] = sdpa(SDPBackend.FLASH_ATTENTION)
    fns["sdpa_cudnn"] = sdpa(SDPBackend.CUDNN_ATTENTION)
    kv_gb = 2 * b * n * hkv * d * 2 / 1e9
    buf = torch.empty(256 * 2**20 // 4, dtype=torch.int32, device="cuda")
    flushes = {"dirty": buf.zero_, "clean": lambda: buf.sum(dtype=torch.int64)}
    if args.only:
        fns = {n: f for n, f in fns.items() if n in args.only.split(",")}
    report = {"env": environment(), "case": [b, n, h, hkv, args.block], "results": {}}
    for name, fn in fns.items():
        try:
            fn()
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - a peer that cannot run this case is reported, not fatal
            report["results"][name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        warm = summarize(kernel_events(fn, args.calls))
        cold = summarize(kernel_events(fn, args.calls, flushes["dirty"]))
        clean = summarize(kernel_events(fn, args.calls, flushes["clean"]))
        r = {"warm": warm, "flushed": cold, "flushed_clean": clean, "bench_us": bench_ms(fn) * 1e3,
             "graph_us": graph_ms(fn) * 1e3, "host_us": host_us_per_call(fn, calls=20, rounds=10)}
        report["results"][name] = r
        print(f"{name}: span warm {warm['span_us']:.1f} us, flushed {cold['span_us']:.1f} us, flushed clean "
              f"{clean['span_us']:.1f} us | do_bench "
              f"{r['bench_us']:.1f} us ({kv_gb / r['bench_us'] * 1e6:.0f} GB/s) | graph {r['graph_us']:.1f} us | "
              f"host {r['host_us']:.1f} us/call")
        for kname, us in cold["kernels_us"].items():
            print(f"    {us:8.1f} us flushed, {clean['kernels_us'].get(kname, float('nan')):8.1f} clean, "
                  f"{warm['kernels_us'].get(kname, float('nan')):8.1f} warm  {kname[:70]}")
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
