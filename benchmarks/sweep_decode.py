"""Decode sweep: the m16 decode tiles (packed GQA, or MHA) x stages x tile_n, heuristic vs fixed split counts.

Over a paged cache (block 64), bf16, d128. Per variant: ``bench`` = GB/s of ``do_bench`` on the call (host work
included, hidden behind its L2 flush), ``graph`` = GB/s of a CUDA-graph replay (GPU time only), ``host_us`` =
host time per call; then the graph GB/s for fixed split counts (which count is fastest on the GPU).

    python benchmarks/sweep_decode.py --json out.json
    python benchmarks/sweep_decode.py --cases 64x4096x32x8 --variant sm80_m16n64_w1x4_s5_pack_la --tiles 3x64,5x64
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import bench_ms, environment, graph_ms, host_us_per_call, write_json  # noqa: E402
from decode import paged_copy  # noqa: E402

from cute_attention import attention_with_kvcache  # noqa: E402
from cute_attention.host.registry import REGISTRY  # noqa: E402

CASES = [(1, 8192, 32, 8), (1, 8192, 32, 32), (2, 65536, 32, 8), (4, 32768, 32, 8), (1, 131072, 32, 8),
         (64, 4096, 32, 8)]
SPLITS = (1, 4, 8, 16, 32, 64)
TILES = ((3, 64), (4, 64), (5, 64), (3, 128), (4, 128))


def with_tiles(v, stages: int | None = None, tile_n: int | None = None):
    """``v`` with another ring depth and KV tile (the mainloop's other options kept)."""
    impl = v.impl if tile_n is None else dataclasses.replace(v.impl, tile_n=tile_n)
    mainloop = v.mainloop if stages is None else dataclasses.replace(v.mainloop, stages=stages)
    return dataclasses.replace(v, name=f"{v.name}_n{impl.tile_n}_s{mainloop.stages}", impl=impl, mainloop=mainloop)


def sweep_case(b: int, n: int, h: int, hkv: int, variant: str | None = None, tiles=TILES,
               block: int = 64, splits=SPLITS) -> list[dict]:
    d = 128
    q = torch.randn(b, 1, h, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(b, n, hkv, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    seqlens = torch.full((b,), n, dtype=torch.int32, device="cuda")
    kv_gb = 2 * b * n * hkv * d * 2 / 1e9
    qs, ks, vs = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def sdpa():
        return torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, enable_gqa=True)

    rows = [{"case": [b, n, h, hkv], "variant": "sdpa", "bench": kv_gb / bench_ms(sdpa) * 1e3,
             "graph": kv_gb / graph_ms(sdpa) * 1e3, "host_us": host_us_per_call(sdpa, calls=20, rounds=15)}]
    kc, table = paged_copy(k, block)
    vc = torch.empty_like(kc)
    vc[table.long().flatten()] = v.reshape(-1, block, hkv, d)
    src = REGISTRY.get(variant or ("sm80_m16n64_w1x4_s3_pack" if hkv < h else "sm80_m16n64_w1x4_s3"))
    for var in (with_tiles(src, stages, tile_n) for stages, tile_n in tiles):

        def call(splits=0, var=var):
            return attention_with_kvcache(q, kc, vc, seqlens, block_table=table, variant=var, num_splits=splits)

        row = {"case": [b, n, h, hkv], "variant": var.name, "bench": kv_gb / bench_ms(call) * 1e3,
               "graph": kv_gb / graph_ms(call) * 1e3, "host_us": host_us_per_call(call, calls=20, rounds=15),
               "splits_graph": {}}
        for s in splits:
            row["splits_graph"][s] = kv_gb / graph_ms(lambda s=s: call(s)) * 1e3
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--cases", default=None, help="comma list of BATCHxCONTEXTxHEADSxKV_HEADS")
    ap.add_argument("--variant", default=None, help="registered variant to sweep (default: the m16 decode tile)")
    ap.add_argument("--tiles", default=None, help="comma list of STAGESxTILE_N")
    ap.add_argument("--block", type=int, default=64, help="paged cache block size")
    ap.add_argument("--splits", default=None, help="comma list of fixed split counts")
    args = ap.parse_args()
    cases = CASES if args.cases is None else [tuple(map(int, c.split("x"))) for c in args.cases.split(",")]
    tiles = TILES if args.tiles is None else [tuple(map(int, t.split("x"))) for t in args.tiles.split(",")]
    splits = SPLITS if args.splits is None else tuple(int(x) for x in args.splits.split(","))
    env = environment()
    rows = []
    for case in cases:
        rows += sweep_case(*case, variant=args.variant, tiles=tiles, block=args.block, splits=splits)
        for r in rows:
            if r["case"] == list(case):
                fixed = " ".join(f"{s}:{g:.0f}" for s, g in r.get("splits_graph", {}).items())
                print(f"{str(case):24s} {r['variant']:36s} bench {r['bench']:5.0f} graph {r['graph']:5.0f} "
                      f"host {r['host_us']:5.1f}us | {fixed}")
    if args.json:
        write_json(args.json, {"env": env, "rows": rows})


if __name__ == "__main__":
    main()
