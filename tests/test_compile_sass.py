"""CPU: every registered variant compiles for sm_80 and sm_90a; its SASS has the instructions its blocks promise.

cp.async mainloop -> LDGSTS; Sm70 mainloop -> LDG.E.128 + STS.128 and no LDGSTS; m16n8k16 Impl ->
HMMA.16816 only, m16n8k8 -> HMMA.1688 only; ldmatrix operand loads -> LDSM; m8n8k4 Impl -> no HMMA (ptxas
emulates it: FFMA + SHFL), LDS.64 operands; SIMT Impl -> FFMA, no HMMA, LDS.64; spills (LDL/STL) within the
variant's budget (0 unless measured otherwise); shared memory within the target's limit.
"""

import struct

import pytest

from cute_attention.core.targets import sm_version, smem_capacity
from cute_attention.host.compile_cache import CompileKey
from cute_attention.host.cubin import cubin_sm
from cute_attention.host.registry import REGISTRY
from cute_attention.kernels.attention import AttentionParams
from cute_attention.tools.catalog import catalog_keys, compile_entry
from cute_attention.tools.sass_snapshot import EXTRA_BUILDS

TARGETS = ["sm_80", "sm_90a"]


def extra_keys(target):
    """Beyond the catalogue (causal + LSE, bf16): other dtypes, masks and no-LSE builds."""
    return [CompileKey.of(AttentionParams(*args), target) for args in EXTRA_BUILDS]


@pytest.fixture(scope="module", params=TARGETS)
def compiled(request):
    target = request.param
    keys = list(catalog_keys(target)) + extra_keys(target)
    return target, [(key, compile_entry(key)[0]) for key in keys]


def test_catalogue_covers_every_variant_and_head_dim(compiled):
    target, entries = compiled
    built = {(e.variant, e.head_dim) for _, e in entries}
    for v in REGISTRY.variants():
        if v.targets is not None and target not in v.targets:
            assert all(name != v.name for name, _ in built), (target, v.name)  # built only for its targets
            continue
        for d in v.head_dims:
            assert (v.name, d) in built


def test_sass_instruction_mix(compiled):
    target, entries = compiled
    for key, e in entries:
        ctx = (target, e.variant, e.dtype, e.head_dim)
        promised = key.params.build(target).impl.mma_sass
        assert bool(e.mma_forms) == (promised is not None), (ctx, e.mma_forms)
        assert not e.sass_violations, (ctx, e.sass_violations)
        assert e.spills <= key.params.variant.spill_budget, ctx
        assert e.registers is not None and e.registers <= 255, ctx
        assert e.smem_bytes <= smem_capacity(target), ctx
        assert e.compile_seconds < 60, ctx
        assert not e.compile_warnings, (ctx, e.compile_warnings)


def test_spill_free_variants_really_are(compiled):
    """The budget is the exception: variants without one must have no local-memory traffic at all."""
    target, entries = compiled
    free = [(k, e) for k, e in entries if k.params.variant.spill_budget == 0]
    assert free
    for _, e in free:
        assert e.sass["LDL"] == 0 and e.sass["STL"] == 0, (target, e.variant, e.head_dim)


def test_cubin_is_for_its_target(compiled):
    """The SM read from each cubin's ELF header is the target's (CUDA 12 and CUDA 13 toolchains alike)."""
    target, entries = compiled
    assert all(e.cubin_sm == sm_version(target) for _, e in entries)


def _elf_header(osabi: int, abi_version: int, flags: int) -> bytes:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2  # 64-bit
    header[7], header[8] = osabi, abi_version
    struct.pack_into("<I", header, 0x30, flags)
    return bytes(header)


@pytest.mark.parametrize("osabi,abi,flags,sm", [
    (0x33, 7, 0x500550, 80),  # CUDA 12 ptxas, sm_80
    (0x33, 7, 0x5A0D5A, 90),  # CUDA 12 ptxas, sm_90a
    (0x41, 8, 0x6005004, 80),  # CUDA 13 ptxas, sm_80
    (0x41, 8, 0x6005A04, 90),  # CUDA 13 ptxas, sm_90a
])
def test_cubin_sm_reads_both_elf_layouts(osabi, abi, flags, sm):
    """Header values as the CUDA 12 and CUDA 13 toolchains write them (read off cubins built by each)."""
    assert cubin_sm(_elf_header(osabi, abi, flags)) == sm


def test_cubin_sm_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="OS/ABI"):
        cubin_sm(_elf_header(0x00, 0, 0x50))
    with pytest.raises(ValueError, match="not a 64-bit ELF"):
        cubin_sm(b"\x7fELF\x01" + bytes(59))


def test_spill_count_includes_every_width():
    from cute_attention.tools.sass import parse

    stats = parse("        /*0010*/  LDL.LU R1, [R1+0x4] ;\n        /*0020*/  STL.64 [R1], R2 ;\n"
                  "        /*0030*/  LDL R3, [R1] ;\n        /*0040*/  LDS R4, [R5] ;\n")
    assert stats.spills == 3
