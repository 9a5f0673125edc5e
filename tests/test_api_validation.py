"""CPU: bad input raises TypeError/ValueError naming the argument, before any device work."""

import pytest
import torch

from cute_attention import attention
from cute_attention.host.registry import SM80_M128N64


def qkv(b=2, sq=16, sk=16, h=4, hkv=2, d=64, dtype=torch.bfloat16):
    return torch.randn(b, sq, h, d, dtype=dtype), torch.randn(b, sk, hkv, d, dtype=dtype), \
        torch.randn(b, sk, hkv, d, dtype=dtype)


CASES = [
    (lambda q, k, v: attention(q.tolist(), k, v), TypeError, "q must be a torch.Tensor"),
    (lambda q, k, v: attention(q[0], k, v), ValueError, "q must have 4 dims"),
    (lambda q, k, v: attention(q.float(), k.float(), v.float()), TypeError, "q must be float16 or bfloat16"),
    (lambda q, k, v: attention(q, k.half(), v), TypeError, "k has dtype"),
    (lambda q, k, v: attention(q, k, v.half()), TypeError, "v has dtype"),
    (lambda q, k, v: attention(q[..., :48], k[..., :48], v[..., :48]), ValueError, "head_dim 48"),
    (lambda q, k, v: attention(q, k, v[:, :8]), ValueError, "k shape .* and v shape"),
    (lambda q, k, v: attention(q, k[:1], v[:1]), ValueError, "k batch 1"),
    (lambda q, k, v: attention(q, torch.randn(2, 16, 2, 128, dtype=q.dtype), torch.randn(2, 16, 2, 128,
                                                                                       dtype=q.dtype)),
     ValueError, "k head_dim 128"),
    (lambda q, k, v: attention(q[:, :, :3], k, v), ValueError, "nheads 3 must be a multiple"),
    (lambda q, k, v: attention(q[:, :0], k, v), ValueError, "empty problem"),
    (lambda q, k, v: attention(q, k, v, window_size=5), TypeError, "window_size"),
    (lambda q, k, v: attention(q, k, v, window_size=(-2, 0)), ValueError, "window_size left must be >= -1"),
    (lambda q, k, v: attention(q, k, v, window_size=(1.5, 0)), TypeError, "window_size left"),
    (lambda q, k, v: attention(q, k, v, causal=1), TypeError, "causal must be a bool"),
    (lambda q, k, v: attention(q, k, v, softmax_scale="x"), TypeError, "softmax_scale"),
    (lambda q, k, v: attention(q, k, v, softmax_scale=float("inf")), ValueError, "softmax_scale must be finite"),
    (lambda q, k, v: attention(q, k, v, return_lse=None), TypeError, "return_lse"),
    (lambda q, k, v: attention(q, k, v, out=torch.empty(2, 16, 4, 32, dtype=q.dtype)), ValueError,
     "out must have shape"),
    (lambda q, k, v: attention(q, k, v, out=torch.empty_like(q, dtype=torch.float16)), ValueError,
     "out must have shape .* and dtype"),
    (lambda q, k, v: attention(q, k, v, variant="nope"), ValueError, "variant: .*nope"),
    (lambda q, k, v: attention(q, k, v, variant=3), TypeError, "variant must be"),
    (lambda q, k, v: attention(torch.randn(1, 4, 1, 256, dtype=q.dtype), torch.randn(1, 4, 1, 256, dtype=q.dtype),
                               torch.randn(1, 4, 1, 256, dtype=q.dtype), variant=SM80_M128N64),
     ValueError, "does not support head_dim 256"),
    (lambda q, k, v: attention(q, k, v, variant="sm90_m128n128_cpasync"), ValueError,
     "reads K/V from a paged cache: call attention_with_kvcache"),
    (lambda q, k, v: attention(q, k, v, config="sm99"), ValueError, "config 'sm99' is not registered"),
    (lambda q, k, v: attention(q, k, v, config=75), TypeError, "config must be a str"),
    (lambda q, k, v: attention(q, k, v, config="sm75", variant=SM80_M128N64), ValueError,
     "is a sm80 variant, but config='sm75'"),
    (lambda q, k, v: attention(q, k, v, num_splits=-1), ValueError, "num_splits must be in 0..128"),
    (lambda q, k, v: attention(q, k, v, num_splits=129), ValueError, "num_splits must be in 0..128"),
    (lambda q, k, v: attention(q, k, v, num_splits=2.0), TypeError, "num_splits must be an int"),
    (lambda q, k, v: attention(q, k, v, num_splits=True), TypeError, "num_splits must be an int"),
    (lambda q, k, v: attention(q, k, v), ValueError, "q must be a CUDA tensor"),
    (lambda q, k, v: attention(q, k, v, config="sm75"), ValueError, "q must be a CUDA tensor"),
    (lambda q, k, v: attention(q, k, v, num_splits=4), ValueError, "q must be a CUDA tensor"),
]


@pytest.mark.parametrize("call,exc,match", CASES, ids=[c[2] for c in CASES])
def test_bad_input_raises(call, exc, match):
    q, k, v = qkv()
    with pytest.raises(exc, match=match):
        call(q, k, v)


def test_every_config_is_registered_and_finds_its_own_variants():
    from cute_attention import REGISTRY, AttnDesc

    assert REGISTRY.configs() == ["sm80", "sm75", "sm70", "simt", "sm90"]
    for config in REGISTRY.configs():
        for d in (64, 96, 128, 192, 256):
            desc = AttnDesc(d, "float16", 1000, 1000, True, False)
            v = REGISTRY.find(desc, config)
            assert v.config == config and d in v.head_dims


def test_hopper_defaults_to_sm90_for_prefill_only():
    """On sm_90a a call naming no config takes the sm90 variant for prefill (over a paged cache too, TMA per block)
    and sm80 for decode rows; other targets never see sm90; a forced sm90 variant on another target is refused by
    name."""
    from cute_attention import AttnDesc
    from cute_attention.api.checks import resolve_variant

    for d in (64, 96, 128, 192, 256):
        prefill = AttnDesc(d, "bfloat16", 1000, 1000, True, False)
        assert resolve_variant(None, prefill, None, "sm_90a").config == "sm90"
        assert resolve_variant(None, prefill, None, "sm_80").config == "sm80"
        assert resolve_variant(None, AttnDesc(d, "bfloat16", 1, 4096, True, False), None, "sm_90a").config == "sm80"
        for block_size in (16, 64, 256):
            paged = resolve_variant(None, AttnDesc(d, "bfloat16", 1000, 1000, True, False, 1, block_size), None,
                                    "sm_90a")
            assert paged.config == "sm90" and not paged.mainloop.kv_cp_async, (d, block_size, paged.name)
        assert resolve_variant(None, AttnDesc(d, "bfloat16", 64, 4096, True, False, 1, 16), None,
                               "sm_90a").config == "sm80"
    with pytest.raises(ValueError, match="sm_90a only"):
        resolve_variant("sm90_m128n128", AttnDesc(128, "bfloat16", 1000, 1000, False, False), None, "sm_80")


def test_kvcache_calls_take_the_targets_defaults(monkeypatch):
    """``attention_with_kvcache`` naming no config: on sm_90a the sm90 tiles (TMA) for more than 64 query rows over a
    paged or contiguous cache, the sm80 decode tiles for decode rows; sm80 on other targets (no GPU: the plan is
    stopped before its compile)."""
    from cute_attention import attention_with_kvcache
    from cute_attention.api import kvcache
    from cute_attention.host import launcher

    class Chosen(Exception):
        pass

    def stop(params, *args, **kwargs):
        raise Chosen(params.variant)

    monkeypatch.setattr(kvcache, "check_device", lambda *args: None)
    monkeypatch.setattr(launcher, "split_plan", stop)
    for target in ("sm_90a", "sm_80"):
        monkeypatch.setattr(launcher, "target", lambda target=target: target)
        for paged in (True, False):
            for sq, want in ((256, "sm90" if target == "sm_90a" else "sm80"), (1, "sm80")):
                q = torch.zeros(2, sq, 8, 128, dtype=torch.bfloat16)
                shape = (8, 64, 2, 128) if paged else (2, 300, 2, 128)
                kc, vc = torch.zeros(shape, dtype=torch.bfloat16), torch.zeros(shape, dtype=torch.bfloat16)
                table = torch.zeros(2, 4, dtype=torch.int32) if paged else None
                with pytest.raises(Chosen) as got:
                    attention_with_kvcache(q, kc, vc, torch.tensor([100, 200], dtype=torch.int32), block_table=table,
                                           causal=True)
                variant = got.value.args[0]
                assert variant.config == want and variant.kv_cache.paged == paged, (target, paged, sq, variant.name)


def test_decode_choice_follows_group_rows_and_block_size():
    """Every (block size, group, query tokens) decode case: packed 16-row tile when the group's rows fit, reading
    the block table ahead for blocks of 64 tokens and more; the 64-row packed tile up to 64 rows; else unpacked."""
    from cute_attention import REGISTRY, AttnDesc

    for block_size in (0, 16, 32, 64, 128, 256):
        for group in (1, 2, 3, 4, 8, 16):
            for sq in range(1, 17):
                rows = sq * group
                got = REGISTRY.find(AttnDesc(128, "bfloat16", sq, 4096, True, False, group, block_size)).name
                if group > 1 and rows <= 16:
                    want = "sm80_m16n64_w1x4_s5_pack_la" if block_size >= 64 else "sm80_m16n64_w1x4_s3_pack"
                elif group > 1 and rows <= 64:
                    want = "sm80_m64n64_w2x2_pack"
                else:
                    want = "sm80_m16n64_w1x4_s3"
                assert got == want, (block_size, group, sq, got)


def test_sm90_d64_query_tile_follows_padding():
    """sm90 prefill at d64 over contiguous K/V: the 192-row tiles (the late rescale when causal) where they pad at
    most 15% more query rows than 128-row tiles, else 128x128; over a paged cache always 128x128."""
    from cute_attention import REGISTRY, AttnDesc

    for sq in range(65, 4100):
        pad192, pad128 = -(-sq // 192) * 192, -(-sq // 128) * 128
        for causal in (False, True):
            for block_size in (0, 64):
                got = REGISTRY.find(AttnDesc(64, "bfloat16", sq, 8192, causal, False, 4, block_size), "sm90").name
                if block_size == 0 and pad192 * 100 <= pad128 * 115:
                    want = "sm90_m192n128_late" if causal else "sm90_m192n128"
                else:
                    want = "sm90_m128n128"
                assert got == want, (sq, causal, block_size, got)
    assert REGISTRY.find(AttnDesc(64, "bfloat16", 256, 8192, False, False, 4), "sm90").name == "sm90_m128n128"
    assert REGISTRY.find(AttnDesc(64, "bfloat16", 512, 512, False, False), "sm90").name == "sm90_m192n128"


def test_sm70_config_has_no_bf16():
    from cute_attention import REGISTRY, AttnDesc

    with pytest.raises(ValueError, match="no registered sm70 kernel variant"):
        REGISTRY.find(AttnDesc(128, "bfloat16", 1000, 1000, False, False), "sm70")
    assert REGISTRY.find(AttnDesc(128, "bfloat16", 1000, 1000, False, False), "simt").config == "simt"


def test_lds_impls_reject_bad_tiles():
    import cutlass

    from cute_attention.arch.sm70 import Mma884, Simt

    with pytest.raises(ValueError, match="float16 operands only"):
        Mma884(64, 64, 4).build(cutlass.BFloat16, 128)
    with pytest.raises(ValueError, match="warps_s=3 must be >= 1 and divide tile_n=64"):
        Simt(64, 64, 2, warps_s=3).build(cutlass.Float16, 128)
    with pytest.raises(ValueError, match="tile_n/warps_s=2 must be a multiple of 4"):
        Simt(8, 64, 1, warps_s=32).build(cutlass.Float16, 128)
    assert Simt(8, 64, 1, warps_s=4).build(cutlass.Float16, 128).slice_n == 16
    with pytest.raises(ValueError, match="tile_m=48"):
        Mma884(48, 64, 4).build(cutlass.Float16, 128)
    with pytest.raises(ValueError, match="k_unroll"):
        Simt(64, 64, 4, k_unroll=0).build(cutlass.Float16, 64)


def test_tiles_smaller_than_a_copy_pass_are_refused():
    """A query tile must hold at least the rows one pass of the gmem iterator copies (else the copy would spill
    past the tile in shared memory): 8 rows at d64 (16 per pass) and 16 rows at d96 (32 per pass) are refused."""
    import dataclasses

    from cute_attention.host.registry import REGISTRY, SIMT_M8N64_W1X4_PACK, SM80_M16N64_W1X4
    from cute_attention.kernels.attention import AttentionParams

    def why_not(variant, dtype, d, target="sm_80"):
        return AttentionParams(variant, dtype, d).build(target).why_not(target)

    wide = dataclasses.replace(SIMT_M8N64_W1X4_PACK, head_dims=(64, 128))
    assert "smaller than the 16 rows" in why_not(wide, "float16", 64)
    assert why_not(wide, "float16", 128) is None
    d96 = dataclasses.replace(SM80_M16N64_W1X4, head_dims=(96,))
    assert "smaller than the 32 rows" in why_not(d96, "float16", 96)
    for v in REGISTRY.variants():
        for d in v.head_dims:
            assert why_not(v, v.dtypes[0], d, "sm_90a") is None, (v.name, d)


def test_kvcache_bad_input_raises_before_device_work():
    from cute_attention import attention_with_kvcache

    q = torch.randn(2, 1, 4, 64, dtype=torch.bfloat16)
    kc = torch.randn(6, 16, 2, 64, dtype=torch.bfloat16)
    table = torch.zeros(2, 3, dtype=torch.int32)
    lens = torch.tensor([3, 5], dtype=torch.int32)
    cases = [
        (dict(block_table=table.long()), TypeError, "block_table must be int32"),
        (dict(block_table=table[:1]), ValueError, "block_table batch 1"),
        (dict(block_table=table, k=q[:, :, :2]), ValueError, "k and v must be given together"),
        (dict(block_table=table, num_splits=-2), ValueError, "num_splits must be in"),
        (dict(block_table=table, check_lengths=1), TypeError, "check_lengths must be a bool"),
        (dict(block_table=table, k=torch.randn(2, 60, 2, 64, dtype=torch.bfloat16),
              v=torch.randn(2, 60, 2, 64, dtype=torch.bfloat16)), ValueError, "at most 48"),
        (dict(block_table=table), ValueError, "q must be a CUDA tensor"),
    ]
    for kw, exc, match in cases:
        with pytest.raises(exc, match=match):
            attention_with_kvcache(q, kc, kc.clone(), lens, **kw)
    with pytest.raises(TypeError, match="cache_seqlens must be int32"):
        attention_with_kvcache(q, kc, kc.clone(), lens.long(), block_table=table)
    with pytest.raises(ValueError, match="block_size 12 is not supported"):
        attention_with_kvcache(q, kc[:, :12], kc[:, :12].clone(), lens, block_table=table)


def test_call_signature_separates_what_validation_sees():
    """Plans are cached by signature: a bool and an int option differ, a list option or a non-tensor argument
    gives no signature (validated every call), and no tensor data enters it."""
    from cute_attention.api.checks import PlanCache, call_signature

    q = torch.zeros(2, 3, 4, 64)
    base = call_signature((q, None), (None, True, (-1, -1), 1))
    assert base == call_signature((torch.ones(2, 3, 4, 64), None), (None, True, (-1, -1), 1))
    assert base != call_signature((q, None), (None, 1, (-1, -1), 1))
    assert base != call_signature((q, None), (None, True, (-1, False), 1))
    assert base != call_signature((q.transpose(1, 2), None), (None, True, (-1, -1), 1))
    assert call_signature((q, None), (None, True, [-1, -1], 1)) is None
    assert call_signature(([1], None), (None, True, (-1, -1), 1)) is None
    cache = PlanCache(limit=1)
    cache.put(base, "plan")
    cache.put(("other",), "ignored")  # over the limit: not kept
    cache.put(None, "ignored")
    assert cache.get(base) == "plan" and cache.get(("other",)) is None and cache.get(None) is None


def test_plans_route_one_pass_and_split_calls(monkeypatch):
    """The host glue of both entry points' plans (no GPU): one pass or split-K + reduction, the LSE allocated
    only when asked for, the launch record built from the plan's parameters and the call's tensors."""
    import dataclasses

    from cute_attention.api.attention import LaunchPlan
    from cute_attention.api.kvcache import KVCachePlan
    from cute_attention.host import launcher
    from cute_attention.host.registry import SM80_M64N64
    from cute_attention.kernels.attention import AttentionParams

    calls = []
    monkeypatch.setattr(launcher, "launch", lambda kernel, device, args: calls.append((kernel, args)))
    q = torch.zeros(2, 3, 4, 64)
    k = torch.zeros(2, 5, 2, 64)
    one = AttentionParams(SM80_M64N64, "bfloat16", 64, softmax_scale=0.5, window_left=7)
    out, lse = LaunchPlan("K", one, None, (2, 4, 3), (False, False, False)).launch(q, k, k, None)
    kernel, (args, splits) = calls.pop()
    assert kernel == "K" and args.mQ is q and args.mO is out and args.mLSE is lse and splits == 1
    assert args.window_left == 7 and args.mPageTable is None and lse.shape == (2, 4, 3) and lse.dtype == torch.float32
    split = dataclasses.replace(one, split_kv=True, with_lse=True, num_splits=3)
    got = LaunchPlan("K", split, "R", None, (False, False, False)).launch(q, k, k, None)
    (kernel, (args, splits)), (reduce, (rargs,)) = calls[-2:]
    assert kernel == "K" and splits == 3 and args.mO.shape == (3, 2, 3, 4, 64) and args.mO.dtype == torch.float32
    assert reduce == "R" and rargs.mOp is args.mO and rargs.mLSEp is args.mLSE and rargs.mO is got
    assert rargs.mLSE is None and isinstance(got, torch.Tensor)
    lens = torch.tensor([4, 5], dtype=torch.int32)
    table = torch.zeros(2, 3, dtype=torch.int32)
    calls.clear()
    KVCachePlan("K", split, "R", None, None, 0, 48, False).launch(q, k, k, lens, table, None, None, None)
    (_, (args, splits)), _ = calls
    assert args.mQ is q and args.mPageTable is table and args.mSeqlensK is lens and splits == 3
    calls.clear()
    k_new = torch.zeros(2, 2, 2, 64)
    KVCachePlan("K", one, None, "A", None, 2, 48, False).launch(q, k, k, lens, table, k_new, k_new, None)
    (append, (aargs,)), (kernel, (args, _)) = calls
    assert append == "A" and aargs.mKnew is k_new and aargs.mPageTable is table and aargs.mSeqlens is lens
    assert kernel == "K" and torch.equal(args.mSeqlensK, lens + 2)  # the attention reads the appended lengths


def test_quantized_cache_bad_input_raises_before_device_work():
    """Quantized caches: the format from the cache's dtype, its parameter tensors' dtype / shape / layout, the
    other format's arguments refused by name; on a CPU tensor the call gets as far as the device check."""
    from cute_attention import attention_with_kvcache, quantize_kv

    q = torch.randn(2, 1, 4, 64, dtype=torch.bfloat16)
    kc = torch.randn(6, 16, 2, 64, dtype=torch.bfloat16)
    table = torch.zeros(2, 3, dtype=torch.int32)
    lens = torch.tensor([3, 5], dtype=torch.int32)
    k8, kp = quantize_kv(kc, "int8")
    k4, kp4 = quantize_kv(kc, "int4", param_dtype=torch.float32)
    kf, kd = quantize_kv(kc, "fp8")
    assert k8.dtype == torch.int8 and k4.shape == (6, 16, 2, 32) and kp4.dtype == torch.float32
    assert kf.dtype == torch.float8_e4m3fn and kd.shape == (6, 2)
    desc = torch.ones(2, 2)
    cases = [
        (k8, dict(), ValueError, "k_cache_params is required for an int8 cache"),
        (k8, dict(k_cache_params=kp), ValueError, "v_cache_params is required"),
        (k8, dict(k_cache_params=kp, v_cache_params=kp.float()), TypeError, "v_cache_params has dtype"),
        (k8, dict(k_cache_params=kp.int(), v_cache_params=kp.int()), TypeError, "k_cache_params: .*float16"),
        (k8, dict(k_cache_params=kp[:, :8], v_cache_params=kp), ValueError, "k_cache_params must have shape"),
        (k8, dict(k_cache_params=kp, v_cache_params=kp[..., ::2].expand(-1, -1, -1, 2)), ValueError,
         "pair contiguous"),
        (k8, dict(k_cache_params=kp, v_cache_params=kp, k_descale=desc), ValueError, "k_descale belongs to fp8"),
        (kf, dict(k_cache_params=kp, v_cache_params=kp), ValueError, "k_cache_params belongs to int8/int4"),
        (kf, dict(k_descale=desc.double()), TypeError, "k_descale must be float32"),
        (kf, dict(v_descale=desc[:1]), ValueError, r"v_descale must have shape \(batch, nheads_kv\)"),
        (kc, dict(k_cache_params=kp, v_cache_params=kp), ValueError, "not a quantized format"),
        (k4[..., :16], dict(k_cache_params=kp4, v_cache_params=kp4), ValueError, "int4: 32 bytes of two values"),
        (k8, dict(k_cache_params=kp, v_cache_params=kp, k=q[:, :, :2], v=q[:, :, :2]), ValueError,
         "q must be a CUDA tensor"),
        (kc.int(), dict(), TypeError, "k_cache must be"),
        (k8, dict(k_cache_params=kp, v_cache_params=kp), ValueError, "q must be a CUDA tensor"),
        (k4, dict(k_cache_params=kp4, v_cache_params=kp4), ValueError, "q must be a CUDA tensor"),
        (kf, dict(k_descale=desc, v_descale=desc), ValueError, "q must be a CUDA tensor"),
    ]
    for cache, kw, exc, match in cases:
        with pytest.raises(exc, match=match):
            attention_with_kvcache(q, cache, cache.clone(), lens, block_table=table, **kw)
    with pytest.raises(TypeError, match="v_cache has dtype"):
        attention_with_kvcache(q, k8, k4, lens, block_table=table, k_cache_params=kp, v_cache_params=kp)
    for bad, exc, match in ((dict(kind="int2"), ValueError, "kind must be one of"),
                            (dict(kind="int8", param_dtype=torch.int8), TypeError, "param_dtype"),
                            (dict(kind="fp8", param_dtype=torch.float16), ValueError, "param_dtype is for"),
                            (dict(kind="int8", descale=desc), ValueError, "descale is for fp8"),
                            (dict(kind="fp8", descale=desc.half()), TypeError, "descale must be a float32")):
        with pytest.raises(exc, match=match):
            quantize_kv(kc, **bad)
    with pytest.raises(TypeError, match="x must be float16 or bfloat16"):
        quantize_kv(kc.float(), "int8")
