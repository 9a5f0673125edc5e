"""Decode sweep: the m16 decode tiles (packed GQA, or MHA) x stages x tile_n, heuristic vs fixed split counts.

Over a paged cache (block 64), bf16, d128. Per variant: ``bench`` = GB/s of ``do_bench`` on the call (host work
included, hidden behind its L2 flush), ``graph`` = GB/s of a CUDA-graph replay (GPU time only), ``host_us`` =
host time per call; then the graph GB/s for fixed split counts (which count is fastest on the GPU).

    python benchmarks/sweep_decode.py --json out.json
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
from cute_attention.arch.sm80 import Sm80CpAsync  # noqa: E402
from cute_attention.registry import REGISTRY  # noqa: E402

CASES = [(1, 8192, 32, 8), (1, 8192, 32, 32), (2, 65536, 32, 8), (4, 32768, 32, 8), (1, 131072, 32, 8),
         (64, 4096, 32, 8)]
SPLITS = (1, 4, 8, 16, 32, 64)


def with_tiles(v, stages: int | None = None, tile_n: int | None = None):
    impl = v.impl if tile_n is None else dataclasses.replace(v.impl, tile_n=tile_n)
    mainloop = v.mainloop if stages is None else Sm80CpAsync(stages)
    return dataclasses.replace(v, name=f"{v.name}_n{impl.tile_n}_s{mainloop.stages}", impl=impl, mainloop=mainloop)


def sweep_case(b: int, n: int, h: int, hkv: int) -> list[dict]:
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
    kc, table = paged_copy(k, 64)
    vc = torch.empty_like(kc)
    vc[table.long().flatten()] = v.reshape(-1, 64, hkv, d)
    src = REGISTRY.get("sm80_m16n64_w1x4_s3_pack" if hkv < h else "sm80_m16n64_w1x4_s3")
    for var in (with_tiles(src), with_tiles(src, 4), with_tiles(src, 5), with_tiles(src, 3, 128),
                with_tiles(src, 4, 128)):

        def call(splits=0, var=var):
            return attention_with_kvcache(q, kc, vc, seqlens, block_table=table, variant=var, num_splits=splits)

        row = {"case": [b, n, h, hkv], "variant": var.name, "bench": kv_gb / bench_ms(call) * 1e3,
               "graph": kv_gb / graph_ms(call) * 1e3, "host_us": host_us_per_call(call, calls=20, rounds=15),
               "splits_graph": {}}
        for s in SPLITS:
            row["splits_graph"][s] = kv_gb / graph_ms(lambda s=s: call(s)) * 1e3
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    env = environment()
    rows = []
    for case in CASES:
        rows += sweep_case(*case)
        for r in rows:
            if r["case"] == list(case):
                fixed = " ".join(f"{s}:{g:.0f}" for s, g in r.get("splits_graph", {}).items())
                print(f"{str(case):24s} {r['variant']:36s} bench {r['bench']:5.0f} graph {r['graph']:5.0f} "
                      f"host {r['host_us']:5.1f}us | {fixed}")
    if args.json:
        write_json(args.json, {"env": env, "rows": rows})


if __name__ == "__main__":
    main()
