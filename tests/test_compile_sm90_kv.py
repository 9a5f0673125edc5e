"""CPU: the Hopper (sm90) kernels over a KV cache compile for sm_90a and keep their promises (HGMMA, TMA loads or the
cp.async producer's LDGSTS, the role register split, no spills): paged caches whose blocks are smaller than, equal to
and larger than the KV tile (one TMA copy per block or per tile, or cp.async row groups), and a contiguous cache with
per-sequence lengths, with and without PackGQA. A block size that the tile does not divide (nor the tile it), and
the cp.async producer outside a paged cache or with row groups taller than a block, are refused by name before any
compile."""

import cutlass
import pytest

from cute_attention.arch.sm90.paged_cp_async import PagedCpAsyncTiles
from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import (
    SM90_M64N64_PACK,
    SM90_M64N128_PACK,
    SM90_M64N128_PACK_CP,
    SM90_M128N64,
    SM90_M128N80,
    SM90_M128N128,
    SM90_M128N128_CP,
)
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.variant import with_kv_cache
from cute_attention.kv import LinearKVCache, PagedKVCache
from cute_attention.tools.catalog import sass_violations
from cute_attention.tools.sass import find_nvdisasm, inspect_cubin

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")


def cache(spec):
    return LinearKVCache(seqlens=True) if spec == "seqlens" else PagedKVCache(spec)


BUILDS = [
    *[(SM90_M128N128, 128, c, False) for c in (16, 64, 128, 256, "seqlens")],
    (SM90_M128N128, 64, 16, True),
    (SM90_M128N128, 96, 32, False),
    *[(SM90_M128N64, 256, c, True) for c in (16, 256, "seqlens")],
    (SM90_M128N64, 192, 64, False),
    # PackGQA tiles (Q through the consumers' registers), the decode shapes
    (SM90_M64N128_PACK, 128, 16, True),
    (SM90_M64N64_PACK, 256, "seqlens", True),
    # K/V by cp.async from the producer warp group
    *[(SM90_M128N128_CP, 128, c, s) for c, s in ((16, False), (64, True), (256, False))],
    (SM90_M128N128_CP, 64, 128, True),
    (SM90_M64N128_PACK_CP, 128, 32, True),
    (SM90_M64N128_PACK_CP, 64, 256, False),
]


@pytest.mark.parametrize("variant,d,spec,split", BUILDS,
                         ids=[f"{v.name}-d{d}-{c}-{'split' if s else 'one'}" for v, d, c, s in BUILDS])
def test_sm90_cache_builds_keep_their_promises(variant, d, spec, split):
    key = CompileKey.of(AttentionParams(with_kv_cache(variant, cache(spec)), "bfloat16", d, MaskSpec(False, True),
                                        with_lse=True, split_kv=split), "sm_90a")
    stats = inspect_cubin(CACHE.get(key).cubin)
    assert sass_violations(key, stats) == []
    assert stats.spills == 0


def test_sm90_block_sizes_the_tile_does_not_divide_are_refused():
    key = CompileKey.of(AttentionParams(with_kv_cache(SM90_M128N80, PagedKVCache(32)), "bfloat16", 256,
                                        MaskSpec(False, True)), "sm_90a")
    with pytest.raises(ValueError, match="paged blocks of 32 rows and KV tiles of 80 rows"):
        CACHE.get(key)


def test_sm90_cp_async_producer_outside_its_reach_is_refused():
    key = CompileKey.of(AttentionParams(with_kv_cache(SM90_M128N128_CP, LinearKVCache(seqlens=True)), "bfloat16", 128,
                                        MaskSpec(False, True)), "sm_90a")
    with pytest.raises(ValueError, match="cp.async K/V producer reads paged caches"):
        CACHE.get(key)
    assert "row groups of 32 rows (d96) must divide blocks of 16" in PagedCpAsyncTiles(cutlass.BFloat16, 128, 96,
                                                                                         16).why_not()
    assert PagedCpAsyncTiles(cutlass.BFloat16, 128, 96, 32).why_not() is None
