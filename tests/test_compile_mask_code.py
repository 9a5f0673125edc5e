"""CPU: a masked KV step costs about one select per score. ``apply_mask`` writes ``-inf`` by a select; written as a
conditional store into the accumulator fragment it compiled into chains of FSELs (about 15 per score: 1,000-2,000
per kernel, a masked step of 2,248 instructions against 434 unmasked in ``sm90_m192n128`` at d64) and spilled."""

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import SM80_M128N64_S4L, SM90_M128N128, SM90_M192N128
from cute_attention.kernels.attention import AttentionParams
from cute_attention.tools.sass import find_nvdisasm, inspect_cubin

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")

# 64 scores per consumer thread in each build below; the seqlen_k / causal mask runs in two step bodies (the peeled
# first step and the back-phase loop): 128 selects, plus a few for the softmax's fully-masked rows
SCORES_PER_THREAD = 64


@pytest.mark.parametrize("variant,d,target,mask", [
    (SM90_M192N128, 64, "sm_90a", MaskSpec(False, True)),
    (SM90_M192N128, 64, "sm_90a", MaskSpec(False, False)),
    (SM90_M128N128, 128, "sm_90a", MaskSpec(False, True)),
    (SM80_M128N64_S4L, 128, "sm_80", MaskSpec(False, True)),
], ids=["sm90_d64_causal", "sm90_d64_none", "sm90_d128_causal", "sm80_d128_causal"])
def test_masked_steps_select_once_per_score(variant, d, target, mask):
    stats = inspect_cubin(CACHE.get(CompileKey.of(AttentionParams(variant, "bfloat16", d, mask, True), target)).cubin)
    assert stats.count("FSEL") <= 4 * SCORES_PER_THREAD, stats.count("FSEL")
    if variant.mainloop.warp_specialized:
        assert stats.spills == 0
