"""CPU: the bitmask form of the masks — the column count of a warpgroup-MMA accumulator's row and the 32-bit masks
built from it keep exactly the scores whose columns lie in ``[lo, hi)``; a closed form that does not fit the layout
is refused."""

import pytest

from cute_attention.core.masks import BITMASK_CHUNK, below_shift, check_count_below, pair_columns_below


def pair_cols(pairs):
    return [8 * j + e for j in range(pairs) for e in range(2)]


@pytest.mark.parametrize("pairs", [1, 6, 10, 14, 16, 24])
def test_pair_columns_below_counts_the_accumulator_columns(pairs):
    cols = pair_cols(pairs)
    for limit in range(-20, 8 * pairs + 20):
        assert pair_columns_below(limit, pairs) == sum(c < limit for c in cols)
    assert check_count_below(lambda x: pair_columns_below(x, pairs), cols) == cols


def word(count, chunk):
    shift = below_shift(count, chunk)
    return 0 if shift >= 32 else 0xFFFFFFFF >> shift


@pytest.mark.parametrize("pairs", [10, 14, 16, 24])
def test_masks_keep_exactly_the_visible_scores(pairs):
    """Every (lo, hi) around the row, both bounds and the right one alone: bit i of chunk s keeps score 32·s + i."""
    cols = pair_cols(pairs)
    span = range(-10, 8 * pairs + 10)
    for hi in span:
        for lo in (*span[::3], -(2**30)):
            keep_hi, keep_lo = pair_columns_below(hi, pairs), pair_columns_below(lo, pairs)
            for c, col in enumerate(cols):
                s, i = divmod(c, BITMASK_CHUNK)
                bits = word(keep_hi, s) & ~word(keep_lo, s)
                assert bool(bits >> i & 1) == (lo <= col < hi), (hi, lo, c)


def test_a_count_that_does_not_fit_the_layout_is_refused():
    with pytest.raises(ValueError, match="does not count the columns"):
        check_count_below(lambda x: pair_columns_below(x, 8), pair_cols(8)[:-1] + [200])
    with pytest.raises(ValueError, match="not ascending"):
        check_count_below(lambda x: 0, [0, 8, 1, 9])
