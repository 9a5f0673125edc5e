"""CPU: the timing instruments the benchmark figures rely on build as they say. ``sweep_sm90.py -nosoftmax`` (the
softmax-less ceiling in docs/benchmarks.md) must leave out every exponential and keep the kernel's MMAs; ``-nobits``
must mask by compares."""

import os
import re
import sys

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.kernels.attention import AttentionParams
from cute_attention.tools.sass import disassemble, find_nvdisasm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import sweep_sm90  # noqa: E402

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")


def _sass(config: str, d: int, causal: bool) -> str:
    params = AttentionParams(sweep_sm90.make(config, d), "bfloat16", d, MaskSpec(False, causal))
    return disassemble(CACHE.get(CompileKey.of(params, "sm_90a")).cubin)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_without_softmax_has_no_exponentials_and_the_same_mmas(causal):
    full, bare = _sass("192x128", 64, causal), _sass("192x128-nosoftmax", 64, causal)
    assert re.search(r"MUFU\.EX2", full)
    assert not re.search(r"MUFU\.EX2", bare)
    assert len(re.findall(r"HGMMA", bare)) == len(re.findall(r"HGMMA", full))


def test_sweep_configs_parse_and_reject():
    v = sweep_sm90.make("128x80s3-noorder-olate", 256)
    assert (v.impl.tile_m, v.impl.tile_n, v.mainloop.stages) == (128, 80, 3)
    assert not v.mainloop.wg_order and not v.mainloop.rescale_o_early
    with pytest.raises(ValueError, match="bad config"):
        sweep_sm90.make("128x80-fast", 256)


def test_nobits_masks_by_compares():
    """``-nobits`` (the A/B of the mask form): the masked steps compare every score (no R2P); the default tests bits."""
    bits, compares = _sass("192x128", 64, True), _sass("192x128-nobits", 64, True)
    assert len(re.findall(r"\bR2P\b", bits)) >= 8 and not re.search(r"\bR2P\b", compares)
    assert len(re.findall(r"\bISETP", compares)) > 2 * len(re.findall(r"\bISETP", bits))
    assert not sweep_sm90.make("128x128-nobits", 128).impl.mask_bits
