"""GPU: split-K over KV tiles and the reduction kernel (skipped without a GPU).

Every split count must give the unsplit result up to fp32 rounding (and pass the fp32 reference rule),
including more splits than KV tiles (empty splits write O = 0, LSE = -inf), with causal and window
masks, GQA, both dtypes and the registered configs; the reduction kernel alone must match a torch
logsumexp merge, also with many splits and with splits or whole rows that saw no key.
"""

import pytest
import torch
from test_gpu_attention import make_qkv, rand, skip_unless_runnable

from cute_attention import attention
from cute_attention.host import launcher
from cute_attention.kernels.split_reduce import ReduceParams
from cute_attention.tools.reference import tolerance_check

pytestmark = pytest.mark.gpu

SHAPES = [(2, 239, 1023, 4, 2), (1, 1023, 239, 8, 8), (3, 17, 17, 8, 2), (1, 1, 4097, 8, 1)]


@pytest.mark.parametrize("config", ["sm80", "sm75", "simt", "sm90"])
@pytest.mark.parametrize("d", [64, 128, 256])
def test_splits_equal_one_pass(config, d):
    skip_unless_runnable(config)
    dtype = torch.bfloat16
    for b, sq, sk, h, hkv in SHAPES:
        for causal, window in [(False, (-1, -1)), (True, (-1, -1)), (False, (100, 20))]:
            q, k, v = make_qkv(b, sq, sk, h, hkv, d, dtype)
            whole, whole_lse = attention(q, k, v, causal=causal, window_size=window, return_lse=True,
                                         config=config)
            for splits in (2, 3, 7, 0):
                ctx = f"{config} d={d} b={b} sq={sq} sk={sk} causal={causal} w={window} splits={splits}"
                out = torch.full_like(q, float("nan"))
                got, lse = attention(q, k, v, causal=causal, window_size=window, return_lse=True, out=out,
                                     config=config, num_splits=splits)
                assert got.data_ptr() == out.data_ptr(), ctx
                assert torch.equal(torch.isneginf(lse), torch.isneginf(whole_lse)), ctx
                fin = ~torch.isneginf(whole_lse)
                torch.testing.assert_close(lse[fin], whole_lse[fin], atol=1e-4, rtol=1e-5, msg=ctx)
                # the two differ only by fp32 rounding before the final bf16 cast: at most a bf16 ulp or two
                torch.testing.assert_close(got.float(), whole.float(), atol=2e-2, rtol=2e-2, msg=ctx)
                ok, err, bound = tolerance_check(got, q, k, v, causal=causal, window_size=window)
                assert ok, f"{ctx}: max error {err:.3e} > bound {bound:.3e}"


def test_split_reference_rule_fp16_gqa_no_lse():
    q, k, v = make_qkv(2, 300, 2000, 8, 2, 128, torch.float16)
    for splits in (2, 5, 0):
        out = torch.full_like(q, float("nan"))
        got = attention(q, k, v, causal=True, out=out, num_splits=splits)
        assert not torch.isnan(got).any()
        ok, err, bound = tolerance_check(got, q, k, v, causal=True)
        assert ok, f"splits={splits}: max error {err:.3e} > bound {bound:.3e}"


def torch_merge(o_part, lse_part):
    lse = torch.logsumexp(lse_part, dim=0)  # (b, h, sq)
    safe = torch.where(torch.isneginf(lse), torch.zeros_like(lse), lse)
    w = torch.exp(lse_part - safe)  # (s, b, h, sq)
    o = (w.permute(0, 1, 3, 2).unsqueeze(-1) * o_part).sum(0)  # (b, sq, h, d)
    return o, lse


@pytest.mark.parametrize("d", [64, 96, 128, 192, 256])
@pytest.mark.parametrize("splits", [1, 2, 5, 33, 64, 65, 128, 129, 200])
def test_reduce_kernel_alone(d, splits):
    b, sq, h = 2, 37, 3
    o_part = rand(splits, b, sq, h, d, dtype=torch.float32)
    lse_part = rand(splits, b, h, sq, dtype=torch.float32) * 4
    lse_part[:, 0, 0, :5] = float("-inf")  # rows that saw no key in any split
    if splits > 1:
        lse_part[1, 1] = float("-inf")  # a split that saw nothing for batch 1
        o_part[1, 1] = 0.0
    o_part[:, 0, :5, 0] = 0.0
    want_o, want_lse = torch_merge(o_part, lse_part)
    for dtype in (torch.bfloat16, torch.float16):
        out = torch.full((b, sq, h, d), float("nan"), dtype=dtype, device="cuda")
        lse = torch.full((b, h, sq), float("nan"), dtype=torch.float32, device="cuda")
        params = ReduceParams({torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype], d, True)
        launcher.launch(launcher.compiled(params), out.device, params.launch_args(o_part, lse_part, out, lse))
        torch.cuda.synchronize()
        assert torch.equal(torch.isneginf(lse), torch.isneginf(want_lse))
        fin = ~torch.isneginf(want_lse)
        torch.testing.assert_close(lse[fin], want_lse[fin], atol=1e-5, rtol=1e-5)
        assert (out[0, :5, 0] == 0).all()
        torch.testing.assert_close(out.float(), want_o, atol=1e-2, rtol=1e-2)
