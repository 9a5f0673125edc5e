"""GPU: kernels against the fp32 reference by FlashAttention's rule (tools/reference.py; skipped without a GPU).

Fresh random inputs per case, NaN-poisoned outputs, odd lengths, sq != sk both ways, GQA 1/4/all,
causal / sliding window / none, fp16 and bf16, every head dim, LSE.
"""

import math

import pytest
import torch

from cute_attention import REGISTRY, attention
from cute_attention.host import launcher
from cute_attention.host.compile_cache import CACHE
from cute_attention.tools.reference import attention_ref, tolerance_check

pytestmark = pytest.mark.gpu

HEAD_DIMS = [64, 96, 128, 192, 256]
DTYPES = [torch.bfloat16, torch.float16]
# (batch, seqlen_q, seqlen_k, nheads, nheads_kv)
SHAPES = [
    (1, 1, 1023, 8, 8),
    (3, 17, 17, 8, 2),
    (1, 113, 239, 4, 1),
    (3, 239, 113, 8, 8),
    (1, 128, 128, 8, 1),
    (1, 1023, 2048, 4, 1),
    (1, 2048, 1023, 8, 2),
]
MASKS = [(False, (-1, -1)), (True, (-1, -1)), (False, (61, 17))]
_seed = [1234]


def rand(*shape, dtype, device="cuda"):
    """Fresh random inputs for every call (never zeros), from a moving seed."""
    _seed[0] += 1
    g = torch.Generator(device=device).manual_seed(_seed[0])
    return torch.randn(shape, dtype=dtype, device=device, generator=g)


def make_qkv(b, sq, sk, h, hkv, d, dtype):
    return rand(b, sq, h, d, dtype=dtype), rand(b, sk, hkv, d, dtype=dtype), rand(b, sk, hkv, d, dtype=dtype)


def check(q, k, v, *, causal=False, window_size=(-1, -1), softmax_scale=None, variant=None, lse_too=True,
          config=None):
    out = torch.full_like(q, float("nan"))
    res = attention(q, k, v, causal=causal, window_size=window_size, softmax_scale=softmax_scale,
                    return_lse=lse_too, out=out, variant=variant, config=config)
    got, lse = res if lse_too else (res, None)
    assert got.data_ptr() == out.data_ptr()
    assert not torch.isnan(got).any(), "some outputs were never written"
    ok, err, bound = tolerance_check(got, q, k, v, causal=causal, window_size=window_size,
                                     softmax_scale=softmax_scale)
    assert ok, f"max error {err:.3e} > bound {bound:.3e}"
    if lse_too:
        _, ref_lse = attention_ref(q, k, v, causal=causal, window_size=window_size, softmax_scale=softmax_scale)
        assert lse.dtype == torch.float32 and lse.shape == ref_lse.shape
        empty = torch.isinf(ref_lse)
        assert torch.equal(torch.isneginf(lse), empty), "LSE must be -inf exactly on rows that see no key"
        torch.testing.assert_close(lse[~empty], ref_lse[~empty], atol=2e-3, rtol=1e-4)
    return got


def skip_unless_runnable(config: str):
    """Skip a config whose kernels need another GPU generation than this one (sm90: Hopper's sm_90a)."""
    if config == "sm90" and launcher.target() != "sm_90a":
        pytest.skip(f"sm90 kernels need an sm_90 GPU, this one compiles for {launcher.target()}")


@pytest.mark.parametrize("config", REGISTRY.configs())
@pytest.mark.parametrize("d", HEAD_DIMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("causal,window", MASKS, ids=["full", "causal", "window"])
def test_matrix(config, d, dtype, causal, window):
    skip_unless_runnable(config)
    dt_name = "bfloat16" if dtype == torch.bfloat16 else "float16"
    if not any(d in v.head_dims and dt_name in v.dtypes for v in REGISTRY.variants() if v.config == config):
        pytest.skip(f"{config} has no {dt_name} d{d} variant")
    for b, sq, sk, h, hkv in SHAPES:
        q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
        try:
            check(q, k, v, causal=causal, window_size=window, config=config)
        except AssertionError as e:
            raise AssertionError(f"b={b} sq={sq} sk={sk} h={h} hkv={hkv}: {e}") from None


def _variant_head_dims(v):
    return [d for d in (64, 128, 256) if d in v.head_dims] or list(v.head_dims[:1])


# (the variants built for a paged cache run in tests/test_gpu_sm90_cp_async.py)
@pytest.mark.parametrize("name", [v.name for v in REGISTRY.variants() if not v.kv_cache.paged])
def test_every_registered_variant(name):
    variant = REGISTRY.get(name)
    skip_unless_runnable(variant.config)
    dtype = torch.bfloat16 if "bfloat16" in variant.dtypes else torch.float16
    for d in _variant_head_dims(variant):
        for b, sq, sk, h, hkv in [(2, 239, 1023, 4, 2), (1, 1023, 239, 4, 4), (1, 64, 4096, 8, 1)]:
            for causal, window in [(True, (-1, -1)), (False, (200, 33)), (True, (100, -1))]:
                q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
                try:
                    check(q, k, v, causal=causal, window_size=window, variant=variant)
                except AssertionError as e:
                    raise AssertionError(f"d={d} b={b} sq={sq} sk={sk} causal={causal} w={window}: {e}") from None


@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
def test_sm90_packs_query_heads_for_decode_rows(d, dtype):
    """config="sm90" with at most 64 packed (token, head) rows takes the PackGQA tile (Q loaded by the consumer warp
    group through registers), GQA 2-16, 1-8 query tokens, every mask, LSE, against the reference."""
    from cute_attention import AttnDesc

    skip_unless_runnable("sm90")
    for b, sq, sk, h, hkv in [(2, 1, 1000, 16, 2), (3, 5, 300, 32, 4), (1, 8, 77, 16, 2), (2, 3, 129, 4, 2)]:
        desc = AttnDesc(d, "bfloat16" if dtype == torch.bfloat16 else "float16", sq, sk, True, False, h // hkv)
        assert REGISTRY.find(desc, "sm90").pack_gqa
        for causal, window in MASKS:
            q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
            try:
                check(q, k, v, causal=causal, window_size=window, config="sm90")
            except AssertionError as e:
                raise AssertionError(f"b={b} sq={sq} sk={sk} h={h}/{hkv} causal={causal} w={window}: {e}") from None


def _sm90_knob(tile_m, tile_n, d, **knobs):
    import dataclasses

    from cute_attention.arch.sm90 import Sm90WarpSpecialized, Wgmma
    from cute_attention.kernels.variant import Variant

    flags = "".join(f"_{k}" if on else f"_no_{k}" for k, on in knobs.items())
    return Variant(f"sm90_m{tile_m}n{tile_n}{flags}", Wgmma(tile_m, tile_n),
                   dataclasses.replace(Sm90WarpSpecialized(), **knobs), config="sm90", head_dims=(d,),
                   targets=("sm_90a",), spill_budget=64)


@pytest.mark.parametrize("knobs", [dict(tma_o_store=True), dict(persistent=True),
                                   dict(persistent=True, tma_o_store=True), dict(rescale_o_early=False)],
                         ids=["tmao", "pers", "pers_tmao", "olate"])
@pytest.mark.parametrize("d,tile_m,tile_n", [(64, 192, 128), (128, 128, 128), (256, 128, 80)])
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
def test_sm90_epilogue_and_persistent_knobs(knobs, d, tile_m, tile_n, dtype):
    """The sm90 knobs away from their defaults: O by one TMA store, persistent CTAs walking work units (more units
    than SMs, fewer, split-K units, causal heavy-first order), O rescaled after P·V landed; against the reference,
    on poisoned outputs."""
    skip_unless_runnable("sm90")
    variant = _sm90_knob(tile_m, tile_n, d, **knobs)
    for b, sq, sk, h, hkv in SHAPES + [(4, 1000, 1500, 32, 8)]:
        for causal, window in MASKS:
            q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
            try:
                check(q, k, v, causal=causal, window_size=window, variant=variant)
            except AssertionError as e:
                raise AssertionError(f"b={b} sq={sq} sk={sk} h={h}/{hkv} causal={causal} w={window}: {e}") from None
    q, k, v = make_qkv(2, 300, 2000, 8, 2, d, dtype)
    for splits in (3, 0):
        out = attention(q, k, v, causal=True, variant=variant, num_splits=splits)
        ok, err, bound = tolerance_check(out, q, k, v, causal=True)
        assert ok, f"splits={splits}: {err:.3e} > {bound:.3e}"


def test_lazy_and_eager_rescale():
    """Both O-rescale forms agree with the reference when the running max keeps moving: the registered lazy
    variant (rescale only past 2**8) and its eager twin (rescale on every tile)."""
    import dataclasses

    from cute_attention.host.registry import SM80_M128N64_S4L

    assert SM80_M128N64_S4L.impl.rescale_threshold is not None
    eager = dataclasses.replace(SM80_M128N64_S4L, name="eager",
                                impl=dataclasses.replace(SM80_M128N64_S4L.impl, rescale_threshold=None))
    for variant in (SM80_M128N64_S4L, eager):
        for causal, window in [(False, (-1, -1)), (True, (-1, -1)), (False, (150, 40))]:
            for b, sq, sk, h, hkv in [(2, 239, 1023, 4, 2), (1, 1023, 239, 4, 4)]:
                q, k, v = make_qkv(b, sq, sk, h, hkv, 128, torch.bfloat16)
                q = q * 4  # large scores: the running max moves by more than the threshold
                check(q, k, v, causal=causal, window_size=window, variant=variant)


def test_no_lse_and_custom_scale():
    q, k, v = make_qkv(2, 300, 517, 4, 2, 128, torch.float16)
    check(q, k, v, causal=True, softmax_scale=0.3, lse_too=False)
    out = attention(q, k, v)  # no out given: allocated
    ok, err, bound = tolerance_check(out, q, k, v)
    assert ok, (err, bound)


def test_window_larger_and_smaller_than_tiles():
    q, k, v = make_qkv(1, 777, 777, 2, 1, 64, torch.bfloat16)
    for window in [(0, 0), (1, 0), (63, 64), (64, 63), (300, 5), (0, 500), (2000, 2000)]:
        check(q, k, v, window_size=window)


def test_strided_and_misaligned_inputs_are_copied():
    b, s, h, d = 2, 333, 4, 128
    q = rand(b, h, s, d, dtype=torch.bfloat16).transpose(1, 2)  # non-contiguous BSHD view
    kv = rand(b, s, 2, d + 8, dtype=torch.bfloat16)
    k = kv[..., 1:d + 1]  # misaligned base, strides not multiples of 8
    v = rand(b, s, 2, d, dtype=torch.bfloat16).transpose(-1, -2).contiguous().transpose(-1, -2)  # last dim strided
    check(q, k, v, causal=True)


def test_launches_on_the_current_stream():
    q, k, v = make_qkv(2, 1024, 1024, 8, 8, 128, torch.bfloat16)
    attention(q, k, v)  # compile outside the timed region
    q2 = torch.full_like(q, float("nan"))
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        torch.cuda._sleep(50_000_000)  # keep the stream busy; a launch elsewhere would read NaN q2
        q2.copy_(q)
        out = attention(q2, k, v)
    s.synchronize()
    ok, err, bound = tolerance_check(out, q, k, v)
    assert ok, (err, bound)


def test_no_recompile_for_runtime_values():
    """Batch, lengths, heads, scale and window sizes are kernel arguments: one compile serves them all."""
    variant = REGISTRY.get("sm80_m128n64_s2")
    q, k, v = make_qkv(1, 100, 200, 4, 2, 64, torch.bfloat16)
    attention(q, k, v, causal=True, return_lse=True, variant=variant)
    attention(q, k, v, window_size=(10, 3), return_lse=True, variant=variant)
    misses = CACHE.misses
    for b, sq, sk, h, hkv in [(2, 37, 555, 8, 2), (1, 700, 70, 2, 1)]:
        q, k, v = make_qkv(b, sq, sk, h, hkv, 64, torch.bfloat16)
        check(q, k, v, causal=True, softmax_scale=0.1 + sq / 1000, variant=variant)
        check(q, k, v, window_size=(sq // 3, sk // 5), variant=variant)
    assert CACHE.misses == misses, "a runtime value triggered a recompile"


def test_errors_write_nothing():
    q, k, v = make_qkv(1, 64, 64, 2, 2, 64, torch.bfloat16)
    out = torch.full_like(q, 7.0)
    with pytest.raises(TypeError, match="k has dtype"):
        attention(q, k.half(), v, out=out)
    with pytest.raises(ValueError, match="out must have a contiguous last dim"):
        attention(q, k, v, out=torch.empty_like(q).transpose(-1, -2).contiguous().transpose(-1, -2))
    with pytest.raises(ValueError, match="k must be a CUDA tensor"):
        attention(q, k.cpu(), v, out=out)
    attention(q, k, v, causal=True, return_lse=True)  # this signature is now validated and remembered
    with pytest.raises(TypeError, match="causal must be a bool"):
        attention(q, k, v, causal=1, return_lse=True)  # 1 == True, but a remembered plan must not admit it
    with pytest.raises(ValueError, match="16-byte aligned"):
        attention(q, k, v, out=torch.empty(q.numel() + 1, dtype=q.dtype, device=q.device)[1:].view(q.shape))
    torch.cuda.synchronize()
    out = torch.full_like(q, 7.0)
    torch.cuda.synchronize()
    assert (out == 7.0).all()


def test_fully_masked_rows_are_zero():
    q, k, v = make_qkv(2, 300, 50, 4, 4, 128, torch.float16)
    out, lse = attention(q, k, v, causal=True, return_lse=True)
    assert (out[:, :250] == 0).all() and torch.isneginf(lse[:, :, :250]).all()
    assert math.isfinite(lse[:, :, 250:].max().item())


def test_cross_compositions():
    """Mainloops and Impls are independent blocks: the synchronous Sm70 mainloop drives the m16n8k16 Impl,
    the cp.async ring drives the m16n8k8 Impl with Q in registers (Q's smem shared with the ring), the
    m8n8k4 Impl and the SIMT Impl (P through shared memory, read from every ring slot)."""
    from cute_attention import Variant
    from cute_attention.arch.sm70 import Mma884, Simt, Sm70Sync
    from cute_attention.arch.sm75 import Mma1688
    from cute_attention.arch.sm80 import Mma16816, Sm80CpAsync

    mixes = [
        Variant("x_sync_16816", Mma16816(64, 64, 4, 1), Sm70Sync(), head_dims=(64, 128)),
        Variant("x_cp3_1688_q", Mma1688(64, 64, 4, 1, q_in_regs=True), Sm80CpAsync(3), head_dims=(64, 128)),
        Variant("x_cp2_884", Mma884(64, 64, 4), Sm80CpAsync(2), dtypes=("float16",), head_dims=(64, 128)),
        Variant("x_cp3_simt_m32", Simt(32, 32, 2, k_unroll=1), Sm80CpAsync(3), head_dims=(64, 128)),
    ]
    for variant in mixes:
        for d, dtype in [(64, torch.float16), (128, torch.bfloat16)]:
            if "bfloat16" not in variant.dtypes:
                dtype = torch.float16
            for b, sq, sk, h, hkv in [(2, 239, 1023, 4, 2), (1, 1023, 239, 4, 4), (3, 17, 17, 8, 2)]:
                for causal, window in [(False, (-1, -1)), (True, (-1, -1)), (False, (61, 17))]:
                    q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
                    try:
                        check(q, k, v, causal=causal, window_size=window, variant=variant)
                    except AssertionError as e:
                        raise AssertionError(f"{variant.name} d={d} sq={sq} sk={sk} causal={causal} w={window}: "
                                             f"{e}") from None


@pytest.mark.parametrize("name,d,dtype", [("sm80_m128n64_s4_lazy", 128, torch.bfloat16),
                                          ("sm80_m64n64_s2", 256, torch.float16),
                                          ("sm80_m16n64_w1x4_s3_pack", 64, torch.bfloat16),
                                          ("sm75_m64n64_sync", 96, torch.float16),
                                          ("sm90_m128n128", 128, torch.bfloat16),
                                          ("sm90_m64n128_pack", 64, torch.float16)])
def test_prologue_slot_ops_on_q(name, d, dtype):
    """Q through the prologue slot (global -> registers -> op -> shared memory) with an op that doubles it gives,
    bit for bit, the default path's result at twice the softmax scale (x2 is exact), LSE included: for a
    prefill tile, a d256 tile, a PackGQA tile (rows gathered from several heads), the synchronous mainloop and the
    warp-specialized Hopper tiles (Q by the consumers instead of the Q TMA copy)."""
    from row_ops import ScaleRows

    from cute_attention.core.masks import MaskSpec
    from cute_attention.host import launcher
    from cute_attention.kernels.attention import AttentionParams

    variant = REGISTRY.get(name)
    skip_unless_runnable(variant.config)
    dt_name = "bfloat16" if dtype == torch.bfloat16 else "float16"
    for b, sq, sk, h, hkv in [(2, 239, 1023, 8, 2), (1, 1, 300, 8, 2), (3, 17, 17, 4, 4)]:
        for causal, window in [(True, (-1, -1)), (False, (61, 17))]:
            q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
            scale = 0.3 / d**0.5
            left, right = window[0], 0 if causal else window[1]
            params = AttentionParams(variant, dt_name, d, MaskSpec(left >= 0, right >= 0), True,
                                     q_ops=(ScaleRows(2.0),), softmax_scale=scale, window_left=max(left, 0),
                                     window_right=max(right, 0))
            out = torch.full_like(q, float("nan"))
            _, lse = launcher.run(launcher.compiled(params), params, None, q, k, v, out, (b, h, sq))
            want, want_lse = attention(q, k, v, causal=causal, window_size=window, softmax_scale=2 * scale,
                                       return_lse=True, variant=variant)
            ctx = (name, b, sq, sk, causal, window)
            assert torch.equal(out, want), (ctx, (out.float() - want.float()).abs().max().item())
            assert torch.equal(lse, want_lse), ctx
