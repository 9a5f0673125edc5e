"""Run our prefill kernel and FlashAttention-4's on the same inputs once each (after a warm-up), for a profiler.

    ncu -k regex:'AttentionKernelWS|FlashAttentionForwardSm90' --section WarpStateStats \\
        python benchmarks/profile_pair.py --d 64 --seqlen 8192 --causal

Shapes follow FlashAttention's benchmark (b·s = 16k, h·d = 2048, bf16). Each kernel is launched twice (the first
call compiles and warms up): read the second launch of each.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from common import fa4_peer  # noqa: E402

from cute_attention import attention  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--seqlen", type=int, default=8192)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--variant", default=None, help="a registered variant name (default: auto dispatch)")
    args = ap.parse_args()
    s, d = args.seqlen, args.d
    b, h = 16384 // s, 2048 // d
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    runs = {"ours": lambda: attention(q, k, v, causal=args.causal, variant=args.variant)}
    fa4 = fa4_peer(args.causal)
    if fa4 is not None:
        runs["fa4"] = lambda: fa4(q, k, v)
    for name, fn in runs.items():
        for _ in range(2):
            fn()
        torch.cuda.synchronize()
        print(f"ran {name}", flush=True)


if __name__ == "__main__":
    main()
