"""CPU: the sm90 mainloop's knobs off by default compile for sm_90a and keep their promises: the TMA store of O
(``stmatrix`` into shared memory, a TMA store, no 16-byte global stores of O) and persistent CTAs (alone, with the
TMA store, with split-K, over a paged cache, with PackGQA), within the tile's spill budget."""

import dataclasses

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import SM90_M64N128_PACK, SM90_M128N80, SM90_M128N128
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.variant import with_kv_cache
from cute_attention.kv import PagedKVCache
from cute_attention.tools.catalog import sass_violations
from cute_attention.tools.sass import find_nvdisasm, inspect_cubin

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")


def knobbed(variant, **knobs):
    flags = "".join(f"_{k}" for k in knobs)
    return dataclasses.replace(variant, name=variant.name + flags,
                               mainloop=dataclasses.replace(variant.mainloop, **knobs))


CAUSAL = MaskSpec(False, True)


def build(variant, d, lse=True, split=False):
    key = CompileKey.of(AttentionParams(variant, "bfloat16", d, CAUSAL, with_lse=lse, split_kv=split), "sm_90a")
    return key, inspect_cubin(CACHE.get(key).cubin)


@pytest.mark.parametrize("variant,d", [(SM90_M128N128, 128), (SM90_M128N80, 256)], ids=["d128", "d256"])
def test_tma_store_of_o(variant, d):
    key, stats = build(knobbed(variant, tma_o_store=True), d, lse=False)
    assert sass_violations(key, stats) == []
    assert stats.count("UTMASTG") > 0 and stats.count("STSM") > 0
    assert stats.count("STG") == 0, "O must leave by the TMA store alone"
    _, plain = build(variant, d, lse=False)
    assert plain.count("UTMASTG") == 0 and plain.count("STG") > 0


@pytest.mark.parametrize("case", ["alone", "tma_store", "split", "paged", "packed"])
def test_persistent_ctas(case):
    variant, d, split = SM90_M128N128, 128, False
    knobs = dict(persistent=True)
    if case == "tma_store":
        knobs["tma_o_store"] = True
    if case == "split":
        split = True
    if case == "packed":
        variant = SM90_M64N128_PACK
    v = knobbed(variant, **knobs)
    if case == "paged":
        v = with_kv_cache(v, PagedKVCache(64))
    key, stats = build(v, d, split=split)
    assert sass_violations(key, stats) == []
    assert stats.spills == 0
