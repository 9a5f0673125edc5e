"""Small cases for compute-sanitizer (memcheck, racecheck, synccheck): one call of each kernel path, checked
against the fp32 reference, so a sanitizer run is short and still covers every kind of build.

    compute-sanitizer --tool memcheck --report-api-errors no python3 benchmarks/sanitizer_cases.py [--only NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from cute_attention import REGISTRY, attention, attention_with_kvcache, dequantize_kv, quantize_kv  # noqa: E402
from cute_attention.tools.reference import attention_ref, tolerance_check  # noqa: E402


def qkv(b, sq, sk, h, hkv, d, dtype=torch.bfloat16):
    return (torch.randn(b, sq, h, d, device="cuda", dtype=dtype),
            torch.randn(b, sk, hkv, d, device="cuda", dtype=dtype),
            torch.randn(b, sk, hkv, d, device="cuda", dtype=dtype))


def prefill(variant=None, dtype=torch.bfloat16, d=128, **kw):
    def run():
        q, k, v = qkv(2, 77, 133, 4, 2, d, dtype)
        out = attention(q, k, v, variant=variant, **kw)
        ok, err, bound = tolerance_check(out, q, k, v, causal=kw.get("causal", False),
                                         window_size=kw.get("window_size", (-1, -1)))
        assert ok, (err, bound)
    return run


B, H, HKV = 2, 16, 4
LENS = (57, 130)


def paged_case(sq, bs, d):
    """q, a paged cache (K, V) holding sequences of LENS tokens (+ room for ``sq`` appended) in randomly permuted
    blocks, its table and lengths."""
    q = torch.randn(B, sq, H, d, device="cuda", dtype=torch.bfloat16)
    blocks_per_seq = -(-(max(LENS) + sq + 16) // bs)
    nblocks = B * blocks_per_seq + 4
    kc, vc = (torch.randn(nblocks, bs, HKV, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    table = torch.randperm(nblocks, device="cuda", dtype=torch.int32)[:B * blocks_per_seq].view(B, -1)
    lens = torch.tensor(LENS, device="cuda", dtype=torch.int32)
    return q, kc, vc, table, lens


def gathered(cache, table, i, n):
    """(1, n, HKV, d) rows of sequence ``i`` of a paged cache."""
    bs = cache.shape[1]
    return cache[table[i, : (n + bs - 1) // bs].long()].reshape(-1, *cache.shape[2:])[:n][None]


def decode_paged(variant=None, splits=0, append=True, config=None, sq=1, bs=16, d=128):
    def run():
        q, kc, vc, table, lens = paged_case(sq, bs, d)
        kn, vn = (torch.randn(B, sq, HKV, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        out = attention_with_kvcache(q, kc, vc, lens, block_table=table, k=kn if append else None,
                                     v=vn if append else None, num_splits=splits, variant=variant, config=config)
        for i in range(B):
            n = int(lens[i]) + (sq if append else 0)
            ref, _ = attention_ref(q[i:i + 1], gathered(kc, table, i, n), gathered(vc, table, i, n), causal=True)
            assert (out[i:i + 1].float() - ref).abs().max().item() < 2e-2
    return run


def decode_quant(kind, variant=None, splits=0, sq=1, bs=64, d=128, append=False):
    """Decode (or prefill rows) over a paged quantized cache (``append``: after the quantizing append of ``sq`` new
    tokens) against the reference on the dequantized cache."""
    def run():
        q, kc, vc, table, lens = paged_case(sq, bs, d)
        new = {}
        if append:
            new = dict(k=torch.randn(B, sq, HKV, d, device="cuda", dtype=torch.bfloat16),
                       v=torch.randn(B, sq, HKV, d, device="cuda", dtype=torch.bfloat16))
        if kind == "fp8":
            # per-head powers of two: e4m3 times them is exact in bf16, as the reference dequantizes
            per_head = torch.exp2(torch.ceil(torch.log2(torch.stack((kc, vc)).float().abs().amax(dim=(1, 2, 4))
                                                        / 448.0)))[:, None]
            (kd, kp), (vd, vp) = (quantize_kv(c, "fp8", descale=s) for c, s in ((kc, per_head[0]), (vc, per_head[1])))
            extra = dict(k_descale=per_head[0].expand(B, -1), v_descale=per_head[1].expand(B, -1))
        else:
            (kd, kp), (vd, vp) = (quantize_kv(c, kind) for c in (kc, vc))
            extra = dict(k_cache_params=kp, v_cache_params=vp)
        out = attention_with_kvcache(q, kd, vd, lens, block_table=table, num_splits=splits, variant=variant, **extra,
                                     **new)
        kq, vq = (dequantize_kv(x, p).to(torch.bfloat16) for x, p in ((kd, kp), (vd, vp)))
        for i in range(B):
            n = int(lens[i]) + (sq if append else 0)
            ok, err, bound = tolerance_check(out[i:i + 1], q[i:i + 1], gathered(kq, table, i, n),
                                             gathered(vq, table, i, n), causal=True)
            assert ok, (err, bound)
    return run


def q_ops():
    from row_ops import ScaleRows

    from cute_attention.core.masks import MaskSpec
    from cute_attention.host import launcher
    from cute_attention.kernels.attention import AttentionParams

    def run():
        q, k, v = qkv(2, 77, 133, 4, 2, 128)
        variant = REGISTRY.get("sm80_m128n64_s4_lazy")
        params = AttentionParams(variant, "bfloat16", 128, MaskSpec(False, True), q_ops=(ScaleRows(2.0),),
                                 softmax_scale=0.05, window_right=0)
        out = torch.empty_like(q)
        launcher.run(launcher.compiled(params), params, None, q, k, v, out, None)
        want = attention(q, k, v, causal=True, softmax_scale=0.1, variant=variant)
        assert torch.equal(out, want)
    return run


def varlen(splits=1, h=4, hkv=2, d=128, config="sm80"):
    from cute_attention import attention_varlen

    def run():
        lens_q, lens_k = [0, 1, 77, 5], [9, 0, 133, 300]
        cu_q = torch.tensor([0, 0, 1, 78, 83], device="cuda", dtype=torch.int32)
        cu_k = torch.tensor([0, 9, 9, 142, 442], device="cuda", dtype=torch.int32)
        q = torch.randn(sum(lens_q), h, d, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(sum(lens_k), hkv, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        out, lse = attention_varlen(q, k, v, cu_q, cu_k, 77, 300, causal=True, return_lse=True, num_splits=splits,
                                   config=config)
        for b in range(4):
            q0, q1, k0, k1 = cu_q[b].item(), cu_q[b + 1].item(), cu_k[b].item(), cu_k[b + 1].item()
            if q1 > q0:
                ok, err, bound = tolerance_check(out[q0:q1][None], q[q0:q1][None], k[k0:k1][None], v[k0:k1][None],
                                                 causal=True)
                assert ok, (b, err, bound)
    return run


CASES = {
    "prefill_sm80": prefill(causal=True),
    "prefill_sm80_window_split": prefill(window_size=(40, 7), num_splits=3),
    "prefill_sm75_q_in_regs": prefill(config="sm75", causal=True),
    "prefill_simt": prefill(config="simt", causal=True, d=64),
    "prefill_sm70": prefill(config="sm70", dtype=torch.float16, d=64),
    "prefill_q_ops_slot": q_ops(),
    "decode_paged_append_split": decode_paged(),
    "decode_paged_lookahead_split": decode_paged(variant="sm80_m16n64_w1x4_s5_pack_la", splits=4),
    "decode_int8_lookahead_split": decode_quant("int8", splits=3),
    "decode_int4_bs16": decode_quant("int4", bs=16, splits=1),
    "decode_fp8_split": decode_quant("fp8", splits=2),
    "prefill_int4_over_cache": decode_quant("int4", sq=37, splits=1),
    "append_int8_bs16": decode_quant("int8", sq=3, bs=16, append=True),
    "append_fp8": decode_quant("fp8", sq=2, append=True),
    "decode_simt_pack": decode_paged(variant="simt_m8n64_w1x4_s3_pack", splits=1, append=False),
    "prefill_sm90_causal": prefill(variant="sm90_m128n128", causal=True),
    "prefill_sm90_window_split": prefill(variant="sm90_m128n128", window_size=(40, 7), num_splits=3),
    "prefill_sm90_d64_3groups": prefill(variant="sm90_m192n128", causal=True, d=64),
    "prefill_sm90_d64_late": prefill(variant="sm90_m192n128_late", causal=True, d=64, num_splits=2),
    "prefill_sm90_d256": prefill(variant="sm90_m128n80", dtype=torch.float16, d=256),
    "prefill_sm90_d192": prefill(variant="sm90_m128n112", causal=True, d=192),
    "varlen": varlen(),
    "varlen_split_packed": varlen(splits=3, h=8, hkv=1),
    "varlen_sm90": varlen(config="sm90"),
    "decode_paged_sm90_pack_split": decode_paged(config="sm90"),
    "prefill_paged_sm90_bs64": decode_paged(config="sm90", sq=100, bs=64, splits=1),
    "prefill_paged_default_bs16": decode_paged(sq=100, bs=16, splits=1),
    "prefill_paged_sm90_bs256_split": decode_paged(config="sm90", sq=100, bs=256, splits=3, append=False),
    "decode_paged_sm90_pack_d256": decode_paged(config="sm90", d=256, bs=32),
    "prefill_paged_sm90_d256_bs32_split": decode_paged(config="sm90", sq=100, bs=32, splits=2, d=256),
    "decode_paged_sm90_cp_async_split": decode_paged(variant="sm90_m64n128_pack_cpasync", splits=3),
    "prefill_paged_sm90_cp_async_bs16": decode_paged(variant="sm90_m128n128_cpasync", sq=100, splits=1),
    "prefill_paged_sm90_cp_async_bs256_d64": decode_paged(variant="sm90_m128n128_cpasync", sq=100, bs=256, splits=2,
                                                          append=False, d=64),
    "prefill_sm90_tma_o_store": prefill(variant=dataclasses.replace(
        REGISTRY.get("sm90_m128n128"), name="sm90_m128n128_tmao",
        mainloop=dataclasses.replace(REGISTRY.get("sm90_m128n128").mainloop, tma_o_store=True)), causal=True),
    "prefill_sm90_persistent_split": prefill(variant=dataclasses.replace(
        REGISTRY.get("sm90_m128n128"), name="sm90_m128n128_pers",
        mainloop=dataclasses.replace(REGISTRY.get("sm90_m128n128").mainloop, persistent=True, tma_o_store=True)),
        causal=True, num_splits=3),
    "varlen_sm90_split_gqa": varlen(splits=3, h=8, hkv=1, d=64, config="sm90"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", help="case names (default: all)")
    args = ap.parse_args()
    for name in args.only or CASES:
        torch.manual_seed(0)
        CASES[name]()
        torch.cuda.synchronize()
        print("ok", name, flush=True)


if __name__ == "__main__":
    main()
