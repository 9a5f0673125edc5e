"""Prefill benchmark on FlashAttention's shapes (b·s = 16k, h·d = 2048) against torch SDPA and FA4.

Peers run in the same process on the same inputs, timed in alternation (``--rounds``, median).
TFLOP/s = 4·b·h·sq·sk·d / time, halved for causal.
Also reports compile seconds per variant and host µs per call on a tiny shape.

    python benchmarks/prefill.py --json out.json [--variant NAME ...] [--config sm75 ...] [--seqlens 512,...]
        [--dims 64,128]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import (  # noqa: E402
    bench_interleaved,
    environment,
    fa4_peer,
    host_us_per_call,
    runnable_only,
    sdpa_peers,
    write_json,
)

from cute_attention import REGISTRY, AttnDesc, attention  # noqa: E402
from cute_attention.host.compile_cache import CACHE  # noqa: E402


def tflops(b, h, sq, sk, d, causal, ms):
    flops = 4 * b * h * sq * sk * d
    if causal:
        flops /= 2
    return flops / (ms * 1e-3) / 1e12


def run_case(b, s, h, d, causal, dtype, variants, peers_on=True, rounds=5):
    g = torch.Generator(device="cuda").manual_seed(s * d + causal)
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype, generator=g) for _ in range(3))
    row = {"batch": b, "seqlen": s, "nheads": h, "head_dim": d, "causal": causal, "results": {}}
    fns = {}
    for name in variants:
        if name.startswith("config:"):
            cfg = name.split(":", 1)[1]
            fns[f"ours:{cfg}"] = (lambda c: lambda: attention(q, k, v, causal=causal, config=c))(cfg)
            continue
        variant = None if name == "auto" else REGISTRY.get(name)
        fns[f"ours:{name}"] = (lambda var: lambda: attention(q, k, v, causal=causal, variant=var))(variant)
    if peers_on:
        for name, fn in sdpa_peers(causal).items():
            fns[name] = (lambda f: lambda: f(q, k, v))(fn)
        fa4 = fa4_peer(causal)
        if fa4 is not None:
            fns["fa4"] = lambda: fa4(q, k, v)
    runnable = runnable_only(fns, row["results"])
    for name, t in bench_interleaved(runnable, rounds=rounds).items():
        row["results"][name] = {"ms": t["ms"], "ms_rounds": t["ms_rounds"],
                                "tflops": tflops(b, h, s, s, d, causal, t["ms"])}
    return row


def host_overheads(dtype) -> dict:
    """CPU µs per call on a tiny shape: ours (whole API and the bare compiled call), SDPA, FA4."""
    import torch.nn.functional as F

    from cute_attention.core.masks import MaskSpec
    from cute_attention.host import launcher
    from cute_attention.kernels.attention import AttentionParams

    q, k, v = (torch.randn(1, 128, 1, 64, device="cuda", dtype=dtype) for _ in range(3))
    out = torch.empty_like(q)
    attention(q, k, v)
    name = "bfloat16" if dtype == torch.bfloat16 else "float16"
    params = AttentionParams(REGISTRY.find(AttnDesc(64, name, 128, 128, False, False)), name, 64,
                             MaskSpec(False, False), softmax_scale=0.125)
    compiled = launcher.compiled(params)
    launch_args = params.launch_args(q, k, v, out, None)
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    cands = {
        "ours": lambda: attention(q, k, v),
        "ours_out_given": lambda: attention(q, k, v, out=out),
        "ours_compiled_call": lambda: compiled(*launch_args),
        "sdpa_default": lambda: F.scaled_dot_product_attention(qt, kt, vt),
    }
    fa4 = fa4_peer(False)
    if fa4 is not None:
        cands["fa4"] = lambda: fa4(q, k, v)
    host = {}
    for name, fn in cands.items():
        try:
            host[name] = round(host_us_per_call(fn), 1)
        except Exception as e:  # noqa: BLE001 - a peer that cannot run is reported
            host[name] = f"error: {e}"[:120]
    return host


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--variant", action="append", help="registered variant names (default: auto dispatch)")
    ap.add_argument("--config", action="append",
                    help="generation configs to time (sm80, sm75, ...: attention(config=...)), e.g. --config sm75")
    ap.add_argument("--seqlens", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per case (median)")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    variants = (args.variant or []) + [f"config:{c}" for c in args.config or []] or ["auto"]
    env = environment()
    print("env:", env)
    rows = []
    for d in map(int, args.dims.split(",")):
        for s in map(int, args.seqlens.split(",")):
            for causal in (False, True):
                b, h = 16384 // s, 2048 // d
                rows.append(run_case(b, s, h, d, causal, dtype, variants, not args.no_peers, args.rounds))
    host = host_overheads(dtype)
    compile_s = {f"{e.key.params.label}/{getattr(e.key.params, 'mask', '')}": round(e.compile_seconds, 2)
                 for e in (CACHE.get(kk) for kk in CACHE.keys())}
    payload = {"env": env, "rows": rows, "host_us_per_call": host, "compile_seconds": compile_s}
    if args.json:
        write_json(args.json, payload)
    # short table last
    names = sorted({n for r in rows for n in r["results"]})
    ours = [n for n in names if n.startswith("ours:")]
    print(f"\n{env['gpu']} | torch {env['torch']} | cutlass-dsl {env['cutlass_dsl']} | {args.dtype}")
    header = f"{'d':>4} {'seqlen':>6} {'causal':>6} " + " ".join(f"{n[:18]:>18}" for n in names)
    print(header + "   ratios (ours / peer)")
    for r in rows:
        res = r["results"]
        cells = [f"{res[n]['tflops']:18.0f}" if "tflops" in res.get(n, {}) else f"{'err':>18}" for n in names]
        ratios = []
        for o in ours:
            for p in names:
                if p in ours or "tflops" not in res.get(p, {}) or "tflops" not in res.get(o, {}):
                    continue
                ratios.append(f"{p}:{res[o]['tflops'] / res[p]['tflops']:.2f}")
        lead = f"{r['head_dim']:>4} {r['seqlen']:>6} {str(r['causal']):>6} "
        print(lead + " ".join(cells) + "   " + " ".join(ratios))
    print("host us/call (tiny shape):", {k: (round(v, 1) if isinstance(v, float) else v) for k, v in host.items()})


if __name__ == "__main__":
    main()
