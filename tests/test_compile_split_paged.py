"""CPU: the split-K, paged-cache and length-aware builds and the reduction kernel compile for sm_80 and sm_90a,
and their SASS keeps the blocks' promises (paged cp.async still LDGSTS, the Sm70 loader still no LDGSTS)."""

import dataclasses

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import (
    SM80_M16N64_W1X4_PACK,
    SM80_M16N64_W1X4_PACK_LA,
)
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.split_reduce import ReduceParams
from cute_attention.kv import PagedKVCache
from cute_attention.tools.catalog import promise_violations
from cute_attention.tools.sass import find_nvdisasm, inspect_cubin
from cute_attention.tools.sass_snapshot import COMPOSED_BUILDS

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")

BUILDS = COMPOSED_BUILDS  # split-K / paged / length-aware / PackGQA / lookahead compositions


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("variant,cache,split", BUILDS,
                         ids=[f"{v.name}-{c.name}{c.block_size or ''}-{s}" for v, c, s in BUILDS])
def test_split_and_paged_builds(target, variant, cache, split):
    key = CompileKey.of(AttentionParams(dataclasses.replace(variant, kv_cache=cache), "bfloat16", 128,
                                        MaskSpec(False, True), True, split), target)
    stats = inspect_cubin(CACHE.get(key).cubin)
    assert stats.registers <= 255
    assert not promise_violations(key, stats), promise_violations(key, stats)
    if split:
        assert stats.count("STG.E.64") or stats.count("STG.E"), "partial O must be stored from registers"


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("d", [64, 96, 128, 192, 256])
def test_reduce_kernel_compiles_spill_free(target, d):
    stats = inspect_cubin(CACHE.get(CompileKey.of(ReduceParams("float16", d, True), target)).cubin)
    assert stats.spills == 0 and stats.count("MUFU") > 0 and stats.count("HMMA") == 0


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_reduce_waits_by_pdl_on_sm90_only(target):
    """The reduction kernel is launched as a programmatic dependent of the attention kernel on sm_90+ and waits
    for it there (griddepcontrol.wait -> ACQBULK); sm_80 has no such instruction and none is emitted."""
    from cute_attention.tools.sass import disassemble

    sass = disassemble(CACHE.get(CompileKey.of(ReduceParams("bfloat16", 128, False), target)).cubin)
    assert ("ACQBULK" in sass) == (target == "sm_90a")


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_reduce_keeps_a_round_of_loads_in_flight(target):
    """The reduction's round of ``unroll`` split loads (LDG.128 of partial O at d128) is issued before the first
    FFMA that sums them: ptxas left to itself keeps only two in flight."""
    from cute_attention.kernels.split_reduce import SplitReduce
    from cute_attention.tools.sass import disassemble

    cubin = CACHE.get(CompileKey.of(ReduceParams("bfloat16", 128, False), target)).cubin
    sass = [line for line in disassemble(cubin).splitlines() if "LDG.E.128" in line or "FFMA" in line]
    first = next(i for i, line in enumerate(sass) if "LDG.E.128" in line)
    in_flight = next(i for i in range(first, len(sass)) if "FFMA" in sass[i]) - first
    assert in_flight >= SplitReduce(None, 128, False).unroll, sass[first:first + 12]


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("block_size", [0, 16, 256], ids=["contiguous", "paged16", "paged256"])
def test_append_kernel_compiles_with_16_byte_copies(target, block_size):
    stats = inspect_cubin(CACHE.get(CompileKey.of(AppendParams("bfloat16", 128, block_size), target)).cubin)
    assert stats.spills == 0 and stats.count("LDG.E.128") >= 2 and stats.count("STG.E.128") >= 2


def _loop_bodies(sass: str) -> list[list[str]]:
    """The instructions between each label and a later branch back to it (the SASS's loops)."""
    lines = [ln.strip() for ln in sass.splitlines()]
    labels = {ln[:-1]: i for i, ln in enumerate(lines) if ln.startswith(".L_") and ln.endswith(":")}
    bodies = []
    for i, ln in enumerate(lines):
        if " BRA `(" in ln:
            target = ln.split("`(")[1].split(")")[0]
            if target in labels and labels[target] < i:
                bodies.append(lines[labels[target]:i])
    return bodies


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("block_size", [16, 256])
def test_append_kernel_reads_the_block_table_once(target, block_size):
    """The append kernel locates the token's slot (one block-table read) before its copy loop: the loop holds
    the 16-byte K and V copies and no 32-bit load."""
    from cute_attention.tools.sass import disassemble

    sass = disassemble(CACHE.get(CompileKey.of(AppendParams("bfloat16", 128, block_size), target)).cubin)
    loops = [b for b in _loop_bodies(sass) if any("LDG.E.128" in ln for ln in b)]
    assert len(loops) == 1, loops
    assert sum("LDG.E.128" in ln for ln in loops[0]) >= 2
    assert not [ln for ln in loops[0] if "LDG.E " in ln], loops[0]


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("split", [False, True])
def test_split_attention_kernel_is_pdl_on_sm90_only(target, split):
    """On sm_90+ a split-K attention kernel is a programmatic dependent of the previous kernel (it waits,
    ACQBULK, before any global access) and lets the reduction stage early (PREEXIT); unsplit builds and sm_80
    carry neither, so their SASS is what it was before PDL."""
    from cute_attention.tools.sass import disassemble

    key = CompileKey.of(AttentionParams(dataclasses.replace(SM80_M16N64_W1X4_PACK, kv_cache=PagedKVCache(64)),
                                        "bfloat16", 128, MaskSpec(False, True), True, split), target)
    sass = disassemble(CACHE.get(key).cubin)
    pdl = split and target == "sm_90a"
    assert ("ACQBULK" in sass) == pdl and ("PREEXIT" in sass) == pdl


def _table_reads_after_barriers(sass: str) -> int:
    """Copies whose issue waits on a table read: a 32-bit LDG between a BAR.SYNC and the first LDGSTS after it."""
    count, after_bar, read = 0, False, False
    for line in sass.splitlines():
        if "BAR.SYNC" in line:
            after_bar, read = True, False
        elif after_bar and "LDG.E " in line:
            read = True
        elif after_bar and "LDGSTS" in line:
            count += read
            after_bar = False
    return count


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("block_size", [16, 64])
def test_locate_ahead_takes_table_reads_off_the_issue(target, block_size):
    """With the block table read one load ahead no K/V copy waits on a table read after its barrier (at most the
    first one of the walk); the same tile without it has one such read per issue site."""
    from cute_attention.tools.sass import disassemble

    counts = {}
    for variant in (SM80_M16N64_W1X4_PACK, SM80_M16N64_W1X4_PACK_LA):
        key = CompileKey.of(AttentionParams(dataclasses.replace(variant, kv_cache=PagedKVCache(block_size)),
                                            "bfloat16", 128, MaskSpec(False, True), True, True), target)
        kernel = CACHE.get(key)
        assert inspect_cubin(kernel.cubin).spills <= variant.spill_budget
        counts[variant.name] = _table_reads_after_barriers(disassemble(kernel.cubin))
    assert counts[SM80_M16N64_W1X4_PACK.name] >= 4 and counts[SM80_M16N64_W1X4_PACK_LA.name] <= 1, counts
