"""CPU tests of the Impl's static (trace-time) helpers: fragment offsets and recipe validation."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import cutlass
import pytest

from cute_attention.arch.common.fragment_impl import mode_offset
from cute_attention.arch.sm80 import Mma16816


def brute_offsets(shape, stride):
    """Offsets of a (possibly nested) mode in colexicographic order, by enumerating coordinates."""
    flat_shape, flat_stride = [], []

    def flat(s, d):
        if isinstance(s, tuple):
            for a, b in zip(s, d):
                flat(a, b)
        else:
            flat_shape.append(s)
            flat_stride.append(d)

    flat(shape, stride)
    out = []
    for coord in itertools.product(*(range(e) for e in reversed(flat_shape))):
        out.append(sum(c * d for c, d in zip(reversed(coord), flat_stride)))
    return out


@pytest.mark.parametrize("shape,stride", [
    (8, 4), ((8, 2), (4, 128)), (((2, 2), 2), ((64, 128), 32)), ((4, 2), (8, 128)), ((2, (3, 2)), (5, (1, 40))),
])
def test_mode_offset_matches_enumeration(shape, stride):
    layout = SimpleNamespace(shape=((2, 2), shape), stride=((1, 2), stride))
    want = brute_offsets(shape, stride)
    assert [mode_offset(layout, 1, i) for i in range(len(want))] == want


@pytest.mark.parametrize("ahead", [0, -1])
def test_ldsm_ahead_must_be_positive(ahead):
    with pytest.raises(ValueError, match="ldsm_ahead"):
        Mma16816(128, 64, 4, 1, ldsm_ahead=ahead).build(cutlass.BFloat16, 128)
