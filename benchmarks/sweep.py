"""Sweep composed Sm80 variants (tile shape, warps, stages, ptxas level) on one prefill shape family.

Variants are composed on the fly (nothing registered), checked against the reference once, then timed
next to torch SDPA FLASH on the same inputs.

    python benchmarks/sweep.py --json sweep.json [--dims 128] [--seqlens 4096,8192]
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_ms, environment, sdpa_peers, write_json  # noqa: E402

from cute_attention import Variant, attention  # noqa: E402
from cute_attention.arch.sm80 import Mma16816, Sm80CpAsync  # noqa: E402
from cute_attention.reference import tolerance_check  # noqa: E402


def grid(head_dim: int):
    """(tile_m, tile_n, warps_q, warps_s, stages, ptxas) candidates for one head dim."""
    out = []
    for tm, tn, wq in [(128, 64, 4), (128, 32, 4), (64, 64, 4), (128, 128, 8)]:
        for stages in (2, 3):
            for ptxas in ("", "-O1"):
                out.append((tm, tn, wq, 1, stages, ptxas, False))
    return out


def parse_config(text: str):
    """``128x64x4s3`` -> (128, 64, 4, 1, 3, "", False); suffix ``O1``: ptxas -O1; ``L``: lazy O rescale."""
    lazy = text.endswith("L")
    body = text[:-1] if lazy else text
    ptxas = "-O1" if body.endswith("O1") else ""
    body = body[:-2] if ptxas else body
    dims, stages = body.split("s")
    tm, tn, wq = map(int, dims.split("x"))
    return tm, tn, wq, 1, int(stages), ptxas, lazy


def make(tm, tn, wq, ws, stages, ptxas, lazy, d):
    name = f"m{tm}n{tn}w{wq}x{ws}s{stages}{ptxas.replace('-', '_')}{'L' if lazy else ''}"
    tiles = Mma16816(tm, tn, wq, ws, rescale_threshold=8.0 if lazy else None)
    return Variant(name, tiles, Sm80CpAsync(stages), head_dims=(d,), ptxas_options=ptxas)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--dims", default="128")
    ap.add_argument("--seqlens", default="4096,8192")
    ap.add_argument("--only", default=None, help="comma list of variant names to keep")
    ap.add_argument("--configs", default=None,
                    help="comma list of MxNxWsS[O1] configs, e.g. 128x64x4s3,128x32x8s2O1 (default: the grid)")
    args = ap.parse_args()
    env = environment()
    rows = []
    for d in map(int, args.dims.split(",")):
        configs = grid(d) if not args.configs else [parse_config(c) for c in args.configs.split(",")]
        variants = [make(*c, d) for c in configs]
        if args.only:
            keep = set(args.only.split(","))
            variants = [v for v in variants if v.name in keep]
        for s in map(int, args.seqlens.split(",")):
            b, h = 16384 // s, 2048 // d
            q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            for causal in (False, True):
                flops = 4 * b * h * s * s * d / (2 if causal else 1)
                flash = sdpa_peers(causal)["sdpa_flash"]
                base = bench_ms(partial(flash, q, k, v))
                for var in variants:
                    row = {"variant": var.name, "d": d, "seqlen": s, "causal": causal,
                           "sdpa_flash_tflops": flops / base / 1e9}
                    try:
                        qs, ks, vs = (torch.randn(1, 777, 4, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
                        ok, err, _ = tolerance_check(attention(qs, ks, vs, causal=causal, variant=var), qs, ks, vs,
                                                     causal=causal)
                        ms = bench_ms(partial(attention, q, k, v, causal=causal, variant=var))
                        row.update(ms=ms, tflops=flops / ms / 1e9, ratio=base / ms, check=ok, err=err)
                    except Exception as e:  # noqa: BLE001 - a config that cannot build is recorded
                        row.update(error=f"{type(e).__name__}: {str(e)[:160]}")
                    rows.append(row)
                    print(row, flush=True)
    if args.json:
        write_json(args.json, {"env": env, "rows": rows})
    print(f"\n{env['gpu']} | torch {env['torch']} | cutlass-dsl {env['cutlass_dsl']}")
    for r in sorted(rows, key=lambda r: (r["d"], r["seqlen"], r["causal"], -r.get("tflops", 0))):
        if "tflops" in r:
            print(f"d{r['d']} s{r['seqlen']} causal={r['causal']!s:5} {r['variant']:22} {r['tflops']:6.0f} TFLOP/s "
                  f"x{r['ratio']:.2f} vs SDPA flash ({r['sdpa_flash_tflops']:.0f})")


if __name__ == "__main__":
    main()
