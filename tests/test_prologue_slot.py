"""CPU: the prologue slot. With ops, Q travels global -> registers (LDG.128) -> ops -> shared memory (STS.128)
instead of the cp.async path; without ops the build is the mainloop's own path (no 128-bit LDG at all). The KV
append runs the same ops on each new token's vectors. GPU checks of the results: tests/test_gpu_attention.py,
tests/test_gpu_kvcache.py."""

import dataclasses

import pytest
from row_ops import ScaleRows

from cute_attention.core.contracts import RowOp
from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import SM80_M16N64_W1X4_PACK, SM80_M128N64_S4L, SM90_M128N128
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kv import PagedKVCache
from cute_attention.tools.sass import find_nvdisasm, inspect_cubin

pytestmark = pytest.mark.skipif(find_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")


def _multiplies(stats) -> int:
    """Instructions ptxas makes of ``x · 2`` (FMUL in fp32, or bf16 HFMA2 / HMUL2 / HADD2 ``x + x``)."""
    return sum(stats.count(op) for op in ("FMUL", "HFMA2", "HMUL2", "HADD2"))


def test_test_op_is_a_row_op():
    assert isinstance(ScaleRows(2.0), RowOp)


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("variant", [SM80_M128N64_S4L, dataclasses.replace(SM80_M16N64_W1X4_PACK,
                                                                           kv_cache=PagedKVCache(64))],
                         ids=["prefill", "packed-paged"])
def test_q_ops_take_the_register_path(target, variant):
    base = AttentionParams(variant, "bfloat16", 128, MaskSpec(False, True), True)
    plain = inspect_cubin(CACHE.get(CompileKey.of(base, target)).cubin)
    with_ops = inspect_cubin(CACHE.get(CompileKey.of(dataclasses.replace(base, q_ops=(ScaleRows(2.0),)),
                                                       target)).cubin)
    assert plain.count("LDG.E.128") == 0 and with_ops.count("LDG.E.128") > 0
    assert 0 < with_ops.count("LDGSTS") < plain.count("LDGSTS")  # K/V still by cp.async, Q no longer
    assert _multiplies(with_ops) > _multiplies(plain)  # the op ran
    assert with_ops.spills <= variant.spill_budget and with_ops.registers <= 255


def test_q_ops_on_hopper_load_q_through_the_consumers():
    """The warp-specialized kernel with ops: the consumer warp groups load Q (LDG.128, ops, STS) and the producer's
    Q TMA copy is gone (one TMA load fewer per d128 tile: two 64-column boxes)."""
    base = AttentionParams(SM90_M128N128, "bfloat16", 128, MaskSpec(False, True), True)
    plain = inspect_cubin(CACHE.get(CompileKey.of(base, "sm_90a")).cubin)
    with_ops = inspect_cubin(CACHE.get(CompileKey.of(dataclasses.replace(base, q_ops=(ScaleRows(2.0),)),
                                                       "sm_90a")).cubin)
    assert plain.count("LDG.E.128") == 0 and with_ops.count("LDG.E.128") > 0
    assert 0 < with_ops.count("UTMALDG") < plain.count("UTMALDG")
    assert _multiplies(with_ops) > _multiplies(plain)
    assert with_ops.spills == 0


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("block_size", [0, 16])
def test_append_ops_run_on_the_copied_vectors(target, block_size):
    plain = inspect_cubin(CACHE.get(CompileKey.of(AppendParams("bfloat16", 128, block_size), target)).cubin)
    params = AppendParams("bfloat16", 128, block_size, ops=(ScaleRows(2.0),))
    with_ops = inspect_cubin(CACHE.get(CompileKey.of(params, target)).cubin)
    assert with_ops.count("LDG.E.128") == plain.count("LDG.E.128") > 0
    assert _multiplies(with_ops) > _multiplies(plain) and with_ops.spills == 0
