"""CPU: the torch reference agrees with naive float64 loops, masks included."""

import numpy as np
import pytest
import torch

from cute_attention.tools.reference import attention_numpy, attention_ref, visibility_mask


@pytest.mark.parametrize("sq,sk", [(1, 5), (5, 1), (4, 4), (7, 3), (3, 9)])
@pytest.mark.parametrize("causal,window", [(False, (-1, -1)), (True, (-1, -1)), (False, (2, 1)), (True, (1, -1))])
@pytest.mark.parametrize("h,hkv", [(2, 2), (4, 1), (4, 2)])
def test_reference_matches_numpy(sq, sk, causal, window, h, hkv):
    g = torch.Generator().manual_seed(sq * 100 + sk)
    q = torch.randn(2, sq, h, 8, generator=g)
    k = torch.randn(2, sk, hkv, 8, generator=g)
    v = torch.randn(2, sk, hkv, 8, generator=g)
    out, lse = attention_ref(q, k, v, causal=causal, window_size=window, softmax_scale=0.7)
    out_np, lse_np = attention_numpy(q.numpy(), k.numpy(), v.numpy(), causal=causal, window_size=window,
                                     softmax_scale=0.7)
    np.testing.assert_allclose(out.numpy(), out_np, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(lse.numpy(), lse_np, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all()


def test_fully_masked_rows_are_zero_with_minus_inf_lse():
    q = torch.randn(1, 6, 1, 4)
    k = torch.randn(1, 2, 1, 4)
    out, lse = attention_ref(q, k, k, causal=True)
    vis = visibility_mask(6, 2, True)
    empty = ~vis.any(1)
    assert empty.sum() == 4
    assert (out[0, empty] == 0).all() and torch.isinf(lse[0, 0, empty]).all()
    assert torch.isfinite(lse[0, 0, ~empty]).all()


def test_visibility_is_bottom_right_aligned():
    vis = visibility_mask(2, 4, True)
    assert vis.tolist() == [[True, True, True, False], [True, True, True, True]]
    vis = visibility_mask(3, 5, False, (1, 0))
    assert vis.tolist() == [[False, True, True, False, False], [False, False, True, True, False],
                            [False, False, False, True, True]]
