"""CPU: the quantized-cache builds (int8 / int4 / fp8 through the combined iterator and the Impl's dequant step)
compile for sm_80 and sm_90a, keep their blocks' promises, and their SASS holds what the format needs: the
parameter tiles' narrow cp.async (4-byte LDGSTS beside the 16-byte data copies), the exponent-trick conversion
and fp32 FMA of the integer formats, the hardware e4m3 -> f16 unpack of fp8; no local memory in the decode tile."""

import re

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import SM75_M64N64, SM80_M16N64_W1X4_PACK_LA, SM80_M64N64_WS2_PACK
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.variant import with_kv_cache, with_kv_quant
from cute_attention.kv import LinearKVCache, PagedKVCache
from cute_attention.kv.quant import KVQuant
from cute_attention.tools.catalog import promise_violations
from cute_attention.tools.sass import disassemble, find_nvdisasm, inspect_cubin

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")

FORMATS = [KVQuant("int8", "bfloat16"), KVQuant("int4", "bfloat16"), KVQuant("fp8"), KVQuant("int8", "float32")]


PAGED64 = PagedKVCache(64)


def build(fmt, target, base=SM80_M16N64_W1X4_PACK_LA, cache=PAGED64, split=False):
    variant = with_kv_quant(with_kv_cache(base, cache), fmt)
    key = CompileKey.of(AttentionParams(variant, "bfloat16", 128, MaskSpec(False, True), True, split), target)
    return key, CACHE.get(key).cubin


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_quantized_decode_tile_sass(target, fmt):
    if fmt.kind == "fp8" and target == "sm_80":
        variant = with_kv_quant(with_kv_cache(SM80_M16N64_W1X4_PACK_LA, PagedKVCache(64)), fmt)
        params = AttentionParams(variant, "bfloat16", 128, MaskSpec(False, True), True)
        assert "sm_89" in params.build(target).why_not(target)  # no e4m3 conversions before Ada
        return
    key, cubin = build(fmt, target)
    stats = inspect_cubin(cubin)
    assert not promise_violations(key, stats), promise_violations(key, stats)
    assert stats.spills == 0
    sass = disassemble(cubin)
    assert "LDGSTS.E.BYPASS.LTC128B.128" in sass  # the data tiles, 16 bytes a copy
    if fmt.has_params:
        assert re.search(r"LDGSTS\.E\.LTC128B(\.64)? ", sass), "the (scale, zero) tiles move by narrow cp.async"
        assert "0x4b000000" in sass and stats.count("FFMA") > 0, "levels -> fp32 by the exponent trick, then FMA"
        assert "F2FP.BF16" in sass, "fp32 -> bf16 pairs"
    else:
        assert not re.search(r"LDGSTS\.E\.LTC128B(\.64)? ", sass)
        assert "F2FP.F16.E4M3.UNPACK_B" in sass, "fp8 -> f16 pairs in hardware"


@pytest.mark.parametrize("fmt", FORMATS[:3], ids=[f.name for f in FORMATS[:3]])
def test_quantized_split_and_contiguous_builds(fmt):
    """Split-K partials over a contiguous cache with lengths, a 64-row PackGQA tile (the prefill-side path), and the
    Sm70 register-staged mainloop (the combined iterator's load / save path) under Turing's m16n8k8 Impl."""
    for base, cache, split in ((SM80_M16N64_W1X4_PACK_LA, LinearKVCache(seqlens=True), True),
                               (SM80_M64N64_WS2_PACK, PagedKVCache(16), False),
                               (SM75_M64N64, PagedKVCache(16), False)):
        key, cubin = build(fmt, "sm_90a", base, cache, split)
        stats = inspect_cubin(cubin)
        assert stats.registers <= 255
        assert not promise_violations(key, stats), promise_violations(key, stats)


APPENDS = [(KVQuant("int8", "bfloat16"), 64, 128), (KVQuant("int4", "float32"), 0, 96), (KVQuant("fp8"), 16, 128)]


@pytest.mark.parametrize("fmt,block_size,d", APPENDS, ids=["int8-paged64", "int4-d96", "fp8"])
def test_quantizing_append_compiles(fmt, block_size, d):
    """The quantizing append: a row's min / max by warp shuffles (integer formats), IEEE-rounded reciprocal and
    round-to-nearest-even instructions (no approximation), e4m3 packing in hardware for fp8; no local memory."""
    from cute_attention.kernels.kv_append import AppendParams

    cubin = CACHE.get(CompileKey.of(AppendParams("bfloat16", d, block_size, kv_quant=fmt), "sm_90a")).cubin
    stats = inspect_cubin(cubin)
    sass = disassemble(cubin)
    assert stats.spills == 0
    if fmt.has_params:
        assert stats.count("SHFL") > 0 and "FRND" in sass and "MUFU.RCP" in sass
    else:
        assert "F2FP.SATFINITE.E4M3" in sass or "E4M3" in sass


def test_byte_rows_take_narrower_copies_where_a_pass_would_overrun_the_tile():
    """A KV tile must hold the rows one pass of the byte copy covers: int4 at d96 is 48 bytes a row (three 16-byte
    vectors: one thread a row, 128 rows a pass), so the 64-row tile copies 8 bytes at a time (64 rows a pass); int4
    at d64 in a 32-row tile likewise; int8 keeps 16-byte copies. Both compile."""
    import dataclasses

    from cute_attention.host.registry import SM75_M64N32

    narrow = with_kv_cache(dataclasses.replace(SM75_M64N32, head_dims=(64,)), PAGED64)
    for base, d, fmt, bits in ((SM80_M64N64_WS2_PACK, 96, KVQuant("int4", "bfloat16"), 64),
                               (SM80_M64N64_WS2_PACK, 96, KVQuant("int8", "bfloat16"), 128),
                               (narrow, 64, KVQuant("int4", "bfloat16"), 64)):
        params = AttentionParams(with_kv_quant(with_kv_cache(base, PAGED64), fmt), "float16", d, MaskSpec(False, True))
        kernel = params.build("sm_80")
        assert kernel.why_not("sm_80") is None
        assert kernel.kv_thread_map().access_bits == bits and kernel.kv_thread_map().rows_per_pass <= kernel.tile_n
    key = CompileKey.of(AttentionParams(with_kv_quant(with_kv_cache(SM80_M64N64_WS2_PACK, PAGED64),
                                                      KVQuant("int4", "bfloat16")), "bfloat16", 96,
                                        MaskSpec(False, True)), "sm_90a")
    sass = disassemble(CACHE.get(key).cubin)
    assert "LDGSTS.E.LTC128B.64" in sass  # the 8-byte data copies
