"""CPU: in the warpgroup-MMA kernels a masked KV step costs about one select per score. Their Impl masks by select
(``apply_mask(by_select=True)``); the conditional store that the mma.sync Impls keep compiled there into chains of
FSELs (about 15 per score: 1,000-2,000 per kernel, a masked step of 2,248 instructions against 434 unmasked in
``sm90_m192n128`` at d64) and spilled."""

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import SM90_M128N80, SM90_M128N128, SM90_M192N128
from cute_attention.kernels.attention import AttentionParams
from cute_attention.tools.sass import find_nvdisasm, inspect_cubin

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")

# at most 64 scores per consumer thread in each build below; the seqlen_k / causal mask runs in two step bodies
# (the peeled first step and the back-phase loop): 128 selects, plus a few for the softmax's fully-masked rows
SCORES_PER_THREAD = 64


@pytest.mark.parametrize("variant,d,target,mask", [
    (SM90_M192N128, 64, "sm_90a", MaskSpec(False, True)),
    (SM90_M192N128, 64, "sm_90a", MaskSpec(False, False)),
    (SM90_M128N128, 128, "sm_90a", MaskSpec(False, True)),
    (SM90_M128N80, 256, "sm_90a", MaskSpec(False, True)),
], ids=["d64_causal", "d64_none", "d128_causal", "d256_causal"])
def test_masked_steps_select_once_per_score(variant, d, target, mask):
    stats = inspect_cubin(CACHE.get(CompileKey.of(AttentionParams(variant, "bfloat16", d, mask, True), target)).cubin)
    assert stats.count("FSEL") <= 4 * SCORES_PER_THREAD, stats.count("FSEL")
    assert stats.spills == 0


@pytest.mark.parametrize("variant,d,mask,isetp", [
    (SM90_M192N128, 64, MaskSpec(False, True), 90),
    (SM90_M128N128, 128, MaskSpec(True, True), 177),
], ids=["d64_causal", "d128_window"])
def test_masked_steps_test_bits(variant, d, mask, isetp):
    """A row's limits become 32-bit masks whose bits ptxas moves into predicates (R2P) instead of a compare per
    score: at most half the ISETPs of the compare form (180 / 354 in these builds at 9bc7b84)."""
    stats = inspect_cubin(CACHE.get(CompileKey.of(AttentionParams(variant, "bfloat16", d, mask, True), "sm_90a")).cubin)
    assert stats.count("R2P") >= 8 and stats.count("ISETP") <= isetp, (stats.count("R2P"), stats.count("ISETP"))
    assert stats.spills == 0
