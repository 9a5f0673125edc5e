"""Sweep composed sm90 variants (tile shape, ring depth, intra-group overlap, warp-group turns) on prefill shapes.

Variants are composed on the fly (nothing registered) and compiled in parallel processes, checked against the
reference once on odd lengths, then timed next to FlashAttention-4 on the same inputs, in alternation (median of
``--rounds``). Shapes follow FlashAttention's benchmark: b·s = 16k, h·d = 2048, bf16.

    python benchmarks/sweep_sm90.py --json sweep.json [--dims 64,128,256] [--seqlens 2048,8192] [--configs ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import re
import sys
from dataclasses import dataclass
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cutlass  # noqa: E402
import cutlass.cute as cute  # noqa: E402
import torch  # noqa: E402
from common import bench_interleaved, environment, fa4_peer, write_json  # noqa: E402

from cute_attention import Variant, attention  # noqa: E402
from cute_attention.arch.sm90 import Sm90WarpSpecialized, Wgmma  # noqa: E402
from cute_attention.core.masks import MaskSpec  # noqa: E402
from cute_attention.host.compile_cache import CompileKey  # noqa: E402
from cute_attention.kernels.attention import AttentionParams  # noqa: E402
from cute_attention.kernels.cta_map import AttentionCtaMap  # noqa: E402
from cute_attention.tools.reference import tolerance_check  # noqa: E402

GRID = {
    64: ["192x128", "128x128", "192x128-noorder", "128x128s3", "192x128-tmao", "192x128-pers-tmao", "192x96"],
    96: ["128x128", "128x96", "192x96", "192x128", "128x128-tmao"],
    128: ["128x128", "128x128-noorder", "128x128-noovl", "128x176", "128x128s3", "128x112", "128x128-tmao",
          "128x128-pers", "128x128-pers-tmao"],
    192: ["128x112", "128x96", "128x80", "128x64", "128x112-noorder", "128x112-tmao"],
    256: ["128x80", "128x64", "128x80-noorder", "128x64s3", "128x48s3", "128x80-tmao", "128x80-pers-tmao"],
}
CONFIG = re.compile(r"^(\d+)x(\d+)(?:s(\d+))?((?:-noorder|-noovl|-tmao|-pers|-olate|-nolpt|-nosoftmax|-nobits)*)$")


@dataclass(frozen=True)
class WithoutSoftmax(Sm90WarpSpecialized):
    """A timing instrument, not a kernel: the mask and the online softmax are left out (P is the raw scores, O's
    rescale factors are 1 and fold away), so the pipeline runs only its loads, MMAs, P conversion and epilogue.
    Its ratio to the full kernel is the time the softmax adds to the critical path. Results are wrong: the sweep
    does not check them."""

    @cute.jit
    def scores(self, a, acc_S, t, mask: cutlass.Constexpr, is_first: cutlass.Constexpr):
        alpha = cute.make_rmem_tensor((a.softmax.num_rows,), cutlass.Float32)
        alpha.fill(1.0)
        return alpha


def make(text: str, d: int) -> Variant:
    """``MxN[sS][-noorder][-noovl][-tmao][-pers][-olate][-nolpt][-nosoftmax][-nobits]``: tile M×N, S-deep K and V
    rings (default 2), without warp-group turns, without the softmax / P·V overlap inside a warp group, with O stored
    by one TMA copy, persistent CTAs, O rescaled after P·V landed instead of under Q·Kᵀ, causal tiles heavy-first
    within each head only (not across L2-sized groups of heads), without the softmax (:class:`WithoutSoftmax`),
    masks by a compare per score instead of 32-bit masks."""
    m = CONFIG.match(text)
    if m is None:
        raise ValueError(f"bad config {text!r}")
    tm, tn = int(m.group(1)), int(m.group(2))
    stages = int(m.group(3) or 2)
    flags = m.group(4) or ""
    strategy = WithoutSoftmax if "-nosoftmax" in flags else Sm90WarpSpecialized
    mainloop = strategy(stages, intra_wg_overlap="-noovl" not in flags, wg_order="-noorder" not in flags,
                        tma_o_store="-tmao" in flags, persistent="-pers" in flags,
                        rescale_o_early="-olate" not in flags)
    return Variant(f"sm90_{text}", Wgmma(tm, tn, mask_bits="-nobits" not in flags), mainloop, config="sm90",
                   head_dims=(d,), cta_map=AttentionCtaMap(lane_groups="-nolpt" not in flags))


def compile_all(variants: dict, jobs: int) -> dict:
    """Compile every (variant, mask) key in ``jobs`` processes; returns the configs that cannot be built."""
    from cute_attention.tools.precompile import _load_or_compile, _quiet

    keys = {}
    for (d, text), v in variants.items():
        for causal in (False, True):
            p = AttentionParams(v, "bfloat16", d, mask=MaskSpec(False, causal))
            if p.build("sm_90a").why_not("sm_90a") is None:
                keys[CompileKey.of(p, "sm_90a")] = (d, text)
    failed = {}
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_quiet) as pool:
        futures = {pool.submit(_load_or_compile, k): k for k in keys}
        for fut in concurrent.futures.as_completed(futures):
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - a config that does not build is reported, not fatal
                failed[keys[futures[fut]]] = str(e)[:200]
    return failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--seqlens", default="2048,8192")
    ap.add_argument("--configs", default=None, help="comma list replacing the grid (all dims)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-j", type=int, default=16)
    args = ap.parse_args()
    env = environment()
    print("env:", env)
    dims = [int(x) for x in args.dims.split(",")]
    variants = {(d, c): make(c, d) for d in dims for c in (args.configs.split(",") if args.configs else GRID[d])}
    for (d, c), v in list(variants.items()):
        for causal in (False, True):
            why = AttentionParams(v, "bfloat16", d, mask=MaskSpec(False, causal)).build("sm_90a").why_not("sm_90a")
            if why is not None:
                print(f"skip {c} d{d}: {why}")
                variants.pop((d, c), None)
    failed = compile_all(variants, args.j)
    for key, err in failed.items():
        print(f"failed {key}: {err}")
        variants.pop(key, None)
    rows = []
    for (d, c), v in list(variants.items()):
        if "-nosoftmax" in c:
            continue
        g = torch.Generator(device="cuda").manual_seed(d)
        q = torch.randn(2, 239, 8, d, device="cuda", dtype=torch.bfloat16, generator=g)
        k, vv = (torch.randn(2, 1023, 2, d, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(2))
        for causal in (False, True):
            ok, err, bound = tolerance_check(attention(q, k, vv, causal=causal, variant=v), q, k, vv, causal=causal)
            if not ok:
                print(f"WRONG {c} d{d} causal={causal}: {err:.3e} > {bound:.3e}")
                variants.pop((d, c), None)
                break
    for d in dims:
        for s in map(int, args.seqlens.split(",")):
            for causal in (False, True):
                b, h = 16384 // s, 2048 // d
                g = torch.Generator(device="cuda").manual_seed(s + d)
                q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(3))
                fns = {c: partial(attention, q, k, v, causal=causal, variant=var)
                       for (dd, c), var in variants.items() if dd == d}
                fa4 = fa4_peer(causal)
                if fa4 is not None:
                    fns["fa4"] = partial(fa4, q, k, v)
                flops = 4 * b * h * s * s * d / (2 if causal else 1)
                res = {n: r["ms"] for n, r in bench_interleaved(fns, rounds=args.rounds).items()}
                tf = {n: flops / (ms * 1e-3) / 1e12 for n, ms in res.items()}
                rows.append({"head_dim": d, "seqlen": s, "causal": causal, "batch": b, "nheads": h, "ms": res,
                             "tflops": tf})
                best = max((n for n in tf if n != "fa4"), key=tf.get)
                fa = tf.get("fa4")
                print(f"d{d} s{s} {'causal' if causal else 'full'}: "
                      + " ".join(f"{n}={t:.0f}" for n, t in sorted(tf.items(), key=lambda x: -x[1]))
                      + (f" | best {best} {tf[best] / fa:.3f}x fa4" if fa else ""))
    if args.json:
        write_json(args.json, {"env": env, "rows": rows, "failed": {str(k): e for k, e in failed.items()}})


if __name__ == "__main__":
    main()
