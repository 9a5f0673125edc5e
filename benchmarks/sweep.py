"""Sweep composed Sm80 variants (tile shape, warps, stages, ptxas level) on one prefill shape family.

Variants are composed on the fly (nothing registered), checked against the reference once, then timed
next to torch SDPA FLASH on the same inputs, in alternation (median of ``--rounds``).

    python benchmarks/sweep.py --json sweep.json [--dims 128] [--seqlens 4096,8192]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_interleaved, environment, sdpa_peers, write_json  # noqa: E402

from cute_attention import Variant, attention  # noqa: E402
from cute_attention.arch.sm80 import Mma16816, Sm80CpAsync  # noqa: E402
from cute_attention.tools.reference import tolerance_check  # noqa: E402


def grid(head_dim: int):
    """Config strings for one head dim (see :func:`parse_config`)."""
    return [f"{tm}x{tn}x{wq}s{stages}{ptxas}" for tm, tn, wq in [(128, 64, 4), (128, 32, 4), (64, 64, 4), (128, 128, 8)]
            for stages in (2, 3) for ptxas in ("", "O1")]


CONFIG = re.compile(r"^(\d+)x(\d+)x(\d+)s(\d+)(O1)?(L)?(?:A(\d+))?$")


def parse_config(text: str) -> dict:
    """``MxNxWsS`` then optional suffixes: ``O1`` ptxas -O1, ``L`` lazy O rescale, ``A<n>`` ldmatrix n copies ahead.

    ``128x64x4s3LA2`` = 128x64 tile, 4 warps, 3 stages, lazy rescale, ldsm_ahead=2.
    """
    m = CONFIG.match(text)
    if m is None:
        raise ValueError(f"bad config {text!r}")
    tm, tn, wq, stages = (int(m.group(i)) for i in range(1, 5))
    return {"name": text, "tiles": Mma16816(tm, tn, wq, 1, rescale_threshold=8.0 if m.group(6) else None,
                                            ldsm_ahead=int(m.group(7)) if m.group(7) else None),
            "stages": stages, "ptxas": "-O1" if m.group(5) else ""}


def make(config: dict, d: int) -> Variant:
    return Variant(config["name"], config["tiles"], Sm80CpAsync(config["stages"]), head_dims=(d,),
                   ptxas_options=config["ptxas"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--dims", default="128")
    ap.add_argument("--seqlens", default="4096,8192")
    ap.add_argument("--only", default=None, help="comma list of variant names to keep")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per case (median)")
    ap.add_argument("--configs", default=None,
                    help="comma list of configs, e.g. 128x64x4s3,128x64x4s3LA2 (see parse_config; default: the grid)")
    args = ap.parse_args()
    env = environment()
    rows = []
    for d in map(int, args.dims.split(",")):
        configs = grid(d) if not args.configs else args.configs.split(",")
        variants = [make(parse_config(c), d) for c in configs]
        if args.only:
            keep = set(args.only.split(","))
            variants = [v for v in variants if v.name in keep]
        for s in map(int, args.seqlens.split(",")):
            b, h = 16384 // s, 2048 // d
            q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            for causal in (False, True):
                flops = 4 * b * h * s * s * d / (2 if causal else 1)
                fns = {"sdpa_flash": partial(sdpa_peers(causal)["sdpa_flash"], q, k, v)}
                case_rows = {}
                for var in variants:
                    row = {"variant": var.name, "d": d, "seqlen": s, "causal": causal}
                    case_rows[var.name] = row
                    try:
                        qs, ks, vs = (torch.randn(1, 777, 4, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
                        ok, err, _ = tolerance_check(attention(qs, ks, vs, causal=causal, variant=var), qs, ks, vs,
                                                     causal=causal)
                        fn = partial(attention, q, k, v, causal=causal, variant=var)
                        fn()
                        fns[var.name] = fn
                        row.update(check=ok, err=err)
                    except Exception as e:  # noqa: BLE001 - a config that cannot build is recorded
                        row.update(error=f"{type(e).__name__}: {str(e)[:160]}")
                times = bench_interleaved(fns, rounds=args.rounds)
                base = times.pop("sdpa_flash")
                for name, t in times.items():
                    row = case_rows[name]
                    row.update(ms=t["ms"], ms_rounds=t["ms_rounds"], tflops=flops / t["ms"] / 1e9,
                               sdpa_flash_tflops=flops / base["ms"] / 1e9, ratio=base["ms"] / t["ms"])
                for row in case_rows.values():
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
