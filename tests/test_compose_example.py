"""The docs' "compose your own variant" example: compiled on the CPU, checked on a GPU."""

import importlib.util
import os

import pytest
import torch

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.kernels.attention import AttentionParams
from cute_attention.tools.sass import inspect_cubin

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "docs", "examples", "compose_variant.py")


def load_example():
    spec = importlib.util.spec_from_file_location("compose_variant", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_compiles_and_dispatches():
    ex = load_example()
    assert ex.pick(128, 100) is ex.my_variant
    with pytest.raises(ValueError):
        ex.pick(128, 4096)
    compiled = CACHE.get(CompileKey.of(AttentionParams(ex.my_variant, "bfloat16", 128, MaskSpec(False, True)),
                                         "sm_80"))
    stats = inspect_cubin(compiled.cubin)
    assert stats.count("HMMA") > 0 and stats.count("LDGSTS") > 0
    assert compiled.threads == 128


@pytest.mark.gpu
def test_example_runs_correctly():
    from cute_attention.tools.reference import tolerance_check

    ex = load_example()
    for sq, sk in [(200, 200), (77, 1500), (1500, 77)]:
        q = torch.randn(2, sq, 8, 128, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(2, sk, 2, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        ok, err, bound = tolerance_check(ex.run(q, k, v), q, k, v, causal=True)
        assert ok, (sq, sk, err, bound)
