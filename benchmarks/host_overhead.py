"""Host µs per call of the eager API on tiny problems (the GPU never sets the pace): prefill with and without
``out``, a paged decode step with and without an append, split-K prefill, the FlashAttention-compatible calls and
varlen (with and without the host check of the offsets, which synchronizes). Public API only, so two commits can be
compared on one machine.

    python benchmarks/host_overhead.py --json out.json [--label NAME]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import environment, host_us_per_call, write_json  # noqa: E402

from cute_attention import (  # noqa: E402
    attention,
    attention_varlen,
    attention_with_kvcache,
    flash_attn_func,
    flash_attn_with_kvcache,
)


def cases() -> dict:
    dt = torch.bfloat16
    q, k, v = (torch.randn(1, 128, 1, 64, device="cuda", dtype=dt) for _ in range(3))
    out = torch.empty_like(q)
    qd = torch.randn(1, 1, 32, 128, device="cuda", dtype=dt)
    kc, vc = (torch.randn(64, 64, 8, 128, device="cuda", dtype=dt) for _ in range(2))
    table = torch.randperm(64, device="cuda", dtype=torch.int32).view(1, 64)
    lens = torch.tensor([1000], device="cuda", dtype=torch.int32)
    k_new, v_new = (torch.randn(1, 1, 8, 128, device="cuda", dtype=dt) for _ in range(2))
    cu = torch.tensor([0, 128], device="cuda", dtype=torch.int32)
    return {
        "prefill": lambda: attention(q, k, v),
        "prefill_out": lambda: attention(q, k, v, out=out),
        "prefill_split4": lambda: attention(q, k, v, num_splits=4),
        "decode_paged": lambda: attention_with_kvcache(qd, kc, vc, lens, block_table=table, num_splits=1),
        "decode_paged_split": lambda: attention_with_kvcache(qd, kc, vc, lens, block_table=table, num_splits=8),
        "decode_paged_append": lambda: attention_with_kvcache(qd, kc, vc, lens, block_table=table, k=k_new, v=v_new,
                                                              num_splits=1),
        "fa_func": lambda: flash_attn_func(q, k, v),
        "fa_kvcache_paged": lambda: flash_attn_with_kvcache(qd, kc, vc, cache_seqlens=lens, block_table=table,
                                                            num_splits=1),
        "varlen": lambda: attention_varlen(q[0], k[0], v[0], cu, cu, 128, 128, check_seqlens=False),
        "varlen_checked": lambda: attention_varlen(q[0], k[0], v[0], cu, cu, 128, 128),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    env = environment()
    host = {name: round(host_us_per_call(fn), 2) for name, fn in cases().items()}
    if args.json:
        write_json(args.json, {"env": env, "label": args.label, "host_us_per_call": host})
    print(f"host us/call {args.label} ({env['gpu']}, commit {env['commit']}):", host)


if __name__ == "__main__":
    main()
