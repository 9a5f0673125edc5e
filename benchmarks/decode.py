"""Decode benchmark: one query token per sequence over a bf16 KV cache, d128 (``--head-dim``); GB/s of K+V read
(with ``--sq N``, N query tokens per sequence, causal: chunked prefill over a cache, reported in TFLOP/s as well).

Ours: ``attention_with_kvcache`` over a paged cache (block 16 and 64, randomly permuted block table) and
over a contiguous cache with lengths. Peers on the same data: torch SDPA (contiguous cache, GQA) and
FlashAttention-4 (contiguous, and paged through ``flash_attn_varlen_func(page_table=...)`` at both block
sizes). Timed in alternation (``--rounds``, median), each timing after 0.5 s of idle GPU. The copy bandwidth
is measured in the same process (device-to-device copy of 2 GiB, read + write bytes over time).

With ``--kv-quant int8,int4,fp8`` the paged-64 cache is also quantized (``quantize_kv``, pairs in bf16) and timed
in each format; their GB/s count the bytes actually read (data and parameters), and a second table gives each
format's step time over the bf16 cache's (``ours:paged64``).

    python benchmarks/decode.py --json out.json [--cases 1x131072,256x1024] [--heads 32/8,32/32] [--config sm90]
        [--compare VARIANT,...] [--kv-quant int8,int4,fp8]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_interleaved, bench_ms, environment, graph_ms, runnable_only, write_json  # noqa: E402

from cute_attention import REGISTRY, attention_with_kvcache, quantize_kv  # noqa: E402
from cute_attention.kv.quant import KVQuant  # noqa: E402

DEFAULT_CASES = "1x131072,1x8192,2x65536,4x32768,8x32768,64x4096,128x1024,256x1024"


def copy_gbps() -> float:
    src = torch.empty(2**30, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    ms = bench_ms(lambda: dst.copy_(src), warmup=5, rep=50)
    return 2 * src.numel() * 2 / (ms * 1e-3) / 1e9


def paged_copy(k, block_size):
    """The same K (batch, L, h, d) as a paged cache with a randomly permuted block table."""
    b, n, h, d = k.shape
    per = n // block_size
    perm = torch.randperm(b * per, device="cuda", dtype=torch.int32)
    cache = torch.empty(b * per, block_size, h, d, dtype=k.dtype, device="cuda")
    table = perm.reshape(b, per).contiguous()
    cache[table.long().flatten()] = k.reshape(b * per, block_size, h, d)
    return cache, table


def peers(q, k, v, seqlens, paged):
    """torch SDPA (contiguous) and FA4 (contiguous, and over each paged cache in ``paged``: bs -> (k, v, table))."""
    fns = {}
    qs, ks, vs = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    fns["sdpa"] = lambda: torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)
    try:
        from flash_attn.cute import flash_attn_func, flash_attn_varlen_func
    except Exception:  # noqa: BLE001 - FA4 not importable: no peer
        return fns
    fns["fa4"] = lambda: flash_attn_func(q, k, v, causal=True)
    for bs, (kc, vc, table) in paged.items():
        fns[f"fa4:paged{bs}"] = (lambda kc_, vc_, t_: lambda: flash_attn_varlen_func(
            q, kc_, vc_, seqused_k=seqlens, page_table=t_, causal=True))(kc, vc, table)
    return fns


def quantized_fns(q, paged64, seqlens, kinds, b, h_kv):
    """``ours:paged64:KIND`` over the paged-64 cache quantized in each format, and the bytes each call reads."""
    kc, vc, table = paged64
    fns, nbytes = {}, {}
    for kind in kinds:
        (kd, kp), (vd, vp) = quantize_kv(kc, kind), quantize_kv(vc, kind)
        if kind == "fp8":  # per-head factors of the whole cache (a paged cache has no batch dim)
            extra = dict(k_descale=kp[:1].expand(b, -1).contiguous(), v_descale=vp[:1].expand(b, -1).contiguous())
            fmt = KVQuant("fp8")
        else:
            extra = dict(k_cache_params=kp, v_cache_params=vp)
            fmt = KVQuant(kind, "bfloat16")
        name = f"ours:paged64:{kind}"
        fns[name] = (lambda kd_, vd_, x_: lambda: attention_with_kvcache(q, kd_, vd_, seqlens, block_table=table,
                                                                         **x_))(kd, vd, extra)
        nbytes[name] = fmt.bytes_per_token_head(q.shape[-1])
    return fns, nbytes


def run_case(b, n, h, hkv, rounds, compare=(), graph=False, config=None, sq=1, d=128, kv_quant=()):
    dtype = torch.bfloat16
    g = torch.Generator(device="cuda").manual_seed(b * n + h)
    q = torch.randn(b, sq, h, d, device="cuda", dtype=dtype, generator=g)
    k = torch.randn(b, n, hkv, d, device="cuda", dtype=dtype, generator=g)
    v = torch.randn(b, n, hkv, d, device="cuda", dtype=dtype, generator=g)
    seqlens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    fns = {"ours:contig": lambda: attention_with_kvcache(q, k, v, seqlens)}
    for name in compare:
        if not REGISTRY.get(name).kv_cache.paged:  # a variant built for paged caches serves no other
            fns[f"ours:contig:{name}"] = (lambda name_: lambda: attention_with_kvcache(q, k, v, seqlens,
                                                                                   variant=name_))(name)
    if config:
        fns[f"ours:contig:{config}"] = lambda: attention_with_kvcache(q, k, v, seqlens, config=config)
    paged = {}
    for bs in (16, 64):
        kc, table = paged_copy(k, bs)
        vc = torch.empty_like(kc)
        vc[table.long().flatten()] = v.reshape(-1, bs, hkv, d)
        paged[bs] = (kc, vc, table)
        fns[f"ours:paged{bs}"] = (lambda kc_, vc_, t_: lambda: attention_with_kvcache(
            q, kc_, vc_, seqlens, block_table=t_))(kc, vc, table)
        for name in compare:
            fns[f"ours:paged{bs}:{name}"] = (lambda kc_, vc_, t_, name_: lambda: attention_with_kvcache(
                q, kc_, vc_, seqlens, block_table=t_, variant=name_))(kc, vc, table, name)
        if config:
            fns[f"ours:paged{bs}:{config}"] = (lambda kc_, vc_, t_: lambda: attention_with_kvcache(
                q, kc_, vc_, seqlens, block_table=t_, config=config))(kc, vc, table)
    fns.update(peers(q, k, v, seqlens, paged))
    per_token_head = {}
    if kv_quant:
        qfns, per_token_head = quantized_fns(q, paged[64], seqlens, kv_quant, b, hkv)
        fns.update(qfns)
    row = {"batch": b, "context": n, "nheads": h, "nheads_kv": hkv, "sq": sq, "head_dim": d, "results": {}}
    runnable = runnable_only(fns, row["results"])
    kv_bytes = 2 * b * n * hkv * d * 2
    # causal, bottom-right: query i sees n - sq + i + 1 keys
    flops = 4 * b * h * d * sum(n - sq + i + 1 for i in range(sq))
    for name, t in bench_interleaved(runnable, rounds=rounds).items():
        read = 2 * b * n * hkv * per_token_head[name] if name in per_token_head else kv_bytes
        row["results"][name] = {"ms": t["ms"], "ms_rounds": t["ms_rounds"], "gbps": read / (t["ms"] * 1e-3) / 1e9,
                                "tflops": flops / (t["ms"] * 1e-3) / 1e12, "bytes_read": read}
    if graph:  # GPU time only: a CUDA-graph replay of each call
        for name, fn in runnable.items():
            try:
                row["results"][name]["graph_gbps"] = kv_bytes / (graph_ms(fn) * 1e-3) / 1e9
            except Exception as e:  # noqa: BLE001 - a callable that cannot be captured is reported, not fatal
                row["results"][name]["graph_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="comma list of BATCHxCONTEXT")
    ap.add_argument("--heads", default="32/8", help="comma list of Q/KV head counts, e.g. 32/8,32/32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", default="", help="also time these registered variants (comma list) on the same data")
    ap.add_argument("--graph", action="store_true", help="also time CUDA-graph replays (GPU time, no host work)")
    ap.add_argument("--config", default=None, help="also time attention_with_kvcache(config=...) on the same data")
    ap.add_argument("--sq", type=int, default=1, help="query tokens per sequence (causal)")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--kv-quant", default="", help="also time the paged-64 cache quantized: comma list of int8, "
                                                     "int4, fp8")
    args = ap.parse_args()
    kinds = [k for k in args.kv_quant.split(",") if k]
    env = environment()
    print("env:", env)
    copy = copy_gbps()
    rows = []
    for heads in args.heads.split(","):
        h, hkv = map(int, heads.split("/"))
        for case in args.cases.split(","):
            b, n = map(int, case.split("x"))
            rows.append(run_case(b, n, h, hkv, args.rounds, [c for c in args.compare.split(",") if c], args.graph,
                                 args.config, args.sq, args.head_dim, kinds))
    if args.json:
        write_json(args.json, {"env": env, "copy_gbps": copy, "rows": rows})
    names = sorted({n for r in rows for n in r["results"]})
    unit = "GB/s of K+V read (% of copy)" if args.sq == 1 else f"TFLOP/s ({args.sq} query tokens, causal)"
    print(f"\n{env['gpu']} | copy {copy:.0f} GB/s | d{args.head_dim} | {unit}")
    print(f"{'heads':>6} {'batch':>5} {'ctx':>7} " + " ".join(f"{n:>18}" for n in names))
    for r in rows:
        cells = []
        for n in names:
            res = r["results"].get(n, {})
            if "gbps" not in res:
                cells.append(f"{'err':>18}")
            elif args.sq == 1:
                cells.append(f"{res['gbps']:7.0f} ({100 * res['gbps'] / copy:3.0f}%)")
            else:
                cells.append(f"{res['tflops']:7.1f}")
        print(f"{r['nheads']:>3}/{r['nheads_kv']:<2} {r['batch']:>5} {r['context']:>7} " + " ".join(
            f"{c:>18}" for c in cells))
    if kinds:
        print("\nstep time over the bf16 cache's (ours:paged64)")
        print(f"{'heads':>6} {'batch':>5} {'ctx':>7} " + " ".join(f"{k:>8}" for k in kinds))
        for r in rows:
            base = r["results"].get("ours:paged64", {}).get("ms")
            cells = [r["results"].get(f"ours:paged64:{k}", {}).get("ms") for k in kinds]
            print(f"{r['nheads']:>3}/{r['nheads_kv']:<2} {r['batch']:>5} {r['context']:>7} " + " ".join(
                f"{c / base:8.3f}" if c and base else f"{'err':>8}" for c in cells))


if __name__ == "__main__":
    main()
