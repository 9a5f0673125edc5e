"""A short GPU check of masked builds (causal, window, seqlen_k tails) on the sm90 and sm80 configs: fresh random
inputs, NaN-poisoned outputs, odd lengths, sq != sk, GQA, against the fp32 reference (FlashAttention's rule).

    python benchmarks/mask_quick_check.py
"""

from __future__ import annotations

import sys

import torch

from cute_attention import attention
from cute_attention.tools.reference import tolerance_check

CASES = [  # (config, d, dtype, causal, window, b, sq, sk, h, hk)
    ("sm90", 64, torch.bfloat16, True, (-1, -1), 2, 300, 555, 4, 2),
    ("sm90", 128, torch.float16, False, (50, 7), 1, 257, 391, 4, 1),
    ("sm90", 256, torch.bfloat16, False, (-1, -1), 2, 190, 203, 2, 2),
    ("sm80", 128, torch.bfloat16, True, (-1, -1), 1, 200, 333, 4, 4),
]


def main() -> int:
    torch.manual_seed(1)
    bad = 0
    for config, d, dt, causal, window, b, sq, sk, h, hk in CASES:
        q = torch.randn(b, sq, h, d, device="cuda", dtype=dt)
        k, v = (torch.randn(b, sk, hk, d, device="cuda", dtype=dt) for _ in range(2))
        out = torch.full_like(q, float("nan"))
        attention(q, k, v, causal=causal, window_size=window, config=config, out=out)
        ok, err, bound = tolerance_check(out, q, k, v, causal=causal, window_size=window)
        bad += not ok
        print(f"{'ok' if ok else 'FAIL'} {config} d{d} {str(dt)[6:]} causal={causal} window={window} "
              f"b{b} sq{sq} sk{sk} h{h}/{hk}: err {err:.2e} bound {bound:.2e}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
