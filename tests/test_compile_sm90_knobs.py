"""CPU: the sm90 mainloop's knobs compile for sm_90a and keep their promises: the TMA store of O (``stmatrix`` into
shared memory, a TMA store, no 16-byte global stores of O), persistent CTAs (alone, with the TMA store, with
split-K, over a paged cache, with PackGQA), within the tile's spill budget, O's rescale under Q·Kᵀ (on by
default) or after P·V, and P·V issued as one wgmma chain at every tile width."""

import dataclasses
import re

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import (
    SM90_M64N128_PACK,
    SM90_M128N80,
    SM90_M128N112,
    SM90_M128N128,
    SM90_M192N128,
)
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.variant import with_kv_cache
from cute_attention.kv import PagedKVCache
from cute_attention.tools.catalog import sass_violations
from cute_attention.tools.sass import disassemble, find_nvdisasm, inspect_cubin, loop_bodies

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


_PV = re.compile(r"HGMMA\S* R\d+, R\d+, gdesc")  # P·V: A from registers
_QK = re.compile(r"HGMMA\S* R\d+, gdesc")  # Q·Kᵀ: both operands in shared memory


def _unmasked_step(variant, d) -> list[str]:
    """The unmasked step's loop without a mask: the shortest loop issuing both products."""
    key = CompileKey.of(AttentionParams(variant, "bfloat16", d, MaskSpec(False, False)), "sm_90a")
    loops = [body for body in loop_bodies(disassemble(CACHE.get(key).cubin))
             if any(_PV.search(x) for x in body) and any(_QK.search(x) for x in body)]
    return loops[0]


def _fmuls_before_pv(variant, d) -> int:
    """FMULs ahead of the first P·V issue in the unmasked step's loop."""
    body = _unmasked_step(variant, d)
    first_pv = next(i for i, x in enumerate(body) if _PV.search(x))
    return sum(1 for x in body[:first_pv] if re.match(r"(@!?P\w+\s+)?FMUL\b", x))


@pytest.mark.parametrize("variant,d", [(SM90_M128N128, 128), (SM90_M128N80, 256)], ids=["d128", "d256"])
def test_o_rescaled_under_qk(variant, d):
    """By default O's rescale (one FMUL per accumulator: d/2 per thread of a 64-row warp group) is issued before P·V,
    under Q·Kᵀ; ``rescale_o_early=False`` leaves it after P·V landed, on the softmax's path."""
    assert _fmuls_before_pv(variant, d) >= d // 2
    assert _fmuls_before_pv(knobbed(variant, rescale_o_early=False), d) == 0


@pytest.mark.parametrize("variant,d", [(SM90_M192N128, 64), (SM90_M128N128, 128), (SM90_M128N112, 192),
                                       (SM90_M128N80, 256)], ids=["d64", "d128", "d192", "d256"])
def test_pv_is_one_wgmma_chain(variant, d):
    """P is packed pair by pair (one F2FP per two values, no byte permutes) and P·V is one chain: one fence
    (WARPGROUP.ARRIVE) per product and one commit (gsb0) at its end. A 40- or 56-value P converted at once had ptxas
    fence and commit every P·V wgmma of the d256 / d192 tiles on its own."""
    body = _unmasked_step(variant, d)
    pv = [x for x in body if _PV.search(x)]
    assert sum("gsb0" in x for x in pv) == 1
    assert sum(x.startswith("WARPGROUP.ARRIVE") for x in body) == 2
    assert not any(x.startswith("PRMT") for x in body)
    p_values = variant.impl.tile_n * 64 // 128  # per consumer thread: 64 rows x tile_n over a warp group
    assert sum(x.startswith("F2FP") for x in body) == p_values // 2
