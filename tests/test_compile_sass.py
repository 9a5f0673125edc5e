"""CPU: every registered variant compiles for sm_80 and sm_90a; its SASS has the instructions its blocks promise.

cp.async mainloop -> LDGSTS; Sm70 mainloop -> LDG.E.128 + STS.128 and no LDGSTS; m16n8k16 Impl ->
HMMA.16816 only, m16n8k8 -> HMMA.1688 only; ldmatrix operand loads -> LDSM; m8n8k4 Impl -> no HMMA (ptxas
emulates it: FFMA + SHFL), LDS.64 operands; SIMT Impl -> FFMA, no HMMA, LDS.64; spills (LDL/STL) within the
variant's budget (0 unless measured otherwise); shared memory within the target's limit.
"""

import pytest

from cute_attention.catalog import catalog_keys, compile_entry
from cute_attention.compile_cache import CompileKey, build_kernel
from cute_attention.kernel import smem_capacity
from cute_attention.masks import MaskSpec
from cute_attention.registry import (
    REGISTRY,
    SIMT_M64N64,
    SIMT_M128N32,
    SM70_M64N64,
    SM75_M64N32,
    SM75_M64N64,
    SM80_M64N64,
    SM80_M128N32_W8,
    SM80_M128N64_S4L,
)

TARGETS = ["sm_80", "sm_90a"]


def extra_keys(target):
    """Beyond the catalogue (causal + LSE, bf16): other dtypes, masks and no-LSE builds."""
    return [
        CompileKey(SM80_M128N64_S4L, "float16", 128, MaskSpec(False, False), False, target),
        CompileKey(SM80_M128N64_S4L, "bfloat16", 64, MaskSpec(True, True), True, target),
        CompileKey(SM80_M128N32_W8, "float16", 256, MaskSpec(True, False), True, target),
        CompileKey(SM80_M64N64, "float16", 192, MaskSpec(True, False), False, target),
        CompileKey(SM75_M64N64, "float16", 128, MaskSpec(False, False), False, target),
        CompileKey(SM75_M64N32, "float16", 256, MaskSpec(True, True), True, target),
        CompileKey(SM70_M64N64, "float16", 64, MaskSpec(False, False), False, target),
        CompileKey(SIMT_M64N64, "float16", 128, MaskSpec(True, False), True, target),
        CompileKey(SIMT_M128N32, "float16", 192, MaskSpec(False, False), False, target),
    ]


@pytest.fixture(scope="module", params=TARGETS)
def compiled(request):
    target = request.param
    keys = list(catalog_keys(target)) + extra_keys(target)
    return target, [(key, compile_entry(key)[0]) for key in keys]


def test_catalogue_covers_every_variant_and_head_dim(compiled):
    target, entries = compiled
    built = {(e.variant, e.head_dim) for _, e in entries}
    for v in REGISTRY.variants():
        for d in v.head_dims:
            assert (v.name, d) in built


def test_sass_instruction_mix(compiled):
    target, entries = compiled
    for key, e in entries:
        ctx = (target, e.variant, e.dtype, e.head_dim)
        promised = build_kernel(key).impl.mma_sass
        assert bool(e.mma_forms) == (promised is not None), (ctx, e.mma_forms)
        assert not e.sass_violations, (ctx, e.sass_violations)
        assert e.spills <= key.variant.spill_budget, (ctx, f"{e.spills} LDL/STL > budget {key.variant.spill_budget}")
        assert e.registers is not None and e.registers <= 255, ctx
        assert e.smem_bytes <= smem_capacity(target), ctx
        assert e.compile_seconds < 60, ctx


def test_spill_free_variants_really_are(compiled):
    """The budget is the exception: variants without one must have no local-memory traffic at all."""
    target, entries = compiled
    free = [(k, e) for k, e in entries if k.variant.spill_budget == 0]
    assert free
    for _, e in free:
        assert e.sass["LDL"] == 0 and e.sass["STL"] == 0, (target, e.variant, e.head_dim)


def test_arch_tag_in_cubin(compiled):
    target, entries = compiled
    want = {"sm_80": "sm80", "sm_90a": "sm90"}[target]
    assert all(e.arch == want for _, e in entries)


def test_spill_count_includes_every_width():
    from cute_attention.sass import parse

    stats = parse("        /*0010*/  LDL.LU R1, [R1+0x4] ;\n        /*0020*/  STL.64 [R1], R2 ;\n"
                  "        /*0030*/  LDL R3, [R1] ;\n        /*0040*/  LDS R4, [R5] ;\n")
    assert stats.spills == 3
