"""CPU tests of the quantized KV formats: the reference quantizer's error bounds, packing, parameter rounding."""

from __future__ import annotations

import pytest
import torch

from cute_attention.api.quantize import (
    TORCH_PARAMS,
    TORCH_STORAGE,
    dequantize_fp8,
    dequantize_int,
    fp8_descale,
    int_levels,
    int_params,
    kv_quant_of,
    pack_levels,
    quantize_fp8,
    quantize_int,
    unpack_levels,
)
from cute_attention.kv.quant import FP8_MAX, KVQuant

INT_FORMATS = [KVQuant(k, p) for k in ("int8", "int4") for p in ("float16", "bfloat16", "float32")]


def test_format_facts():
    assert KVQuant("int8").levels == 255 and KVQuant("int4").levels == 15
    assert KVQuant("int8").offset == 128 and KVQuant("int4").offset == 0
    assert KVQuant("int4").stored_cols(128) == 64 and KVQuant("int8").stored_cols(128) == 128
    assert KVQuant("int8", "float16").bytes_per_token_head(128) == 132
    assert KVQuant("int4", "float32").bytes_per_token_head(128) == 72
    assert KVQuant("fp8").bytes_per_token_head(128) == 128
    assert kv_quant_of(torch.bfloat16) is None
    assert kv_quant_of(torch.int8, torch.float16) == KVQuant("int8", "float16")
    assert kv_quant_of(torch.uint8, torch.float32) == KVQuant("int4", "float32")
    assert kv_quant_of(torch.float8_e4m3fn) == KVQuant("fp8")


@pytest.mark.parametrize("bad", [dict(kind="int2"), dict(param_dtype="float64"),
                                 dict(kind="fp8", param_dtype="float16")])
def test_format_errors(bad):
    with pytest.raises(ValueError):
        KVQuant(**bad)
    with pytest.raises(TypeError, match="parameters"):
        kv_quant_of(torch.int8, torch.int32)


@pytest.mark.parametrize("fmt", [KVQuant("int8"), KVQuant("int4")])
def test_pack_unpack_roundtrip_every_level(fmt):
    q = torch.arange(fmt.levels + 1, dtype=torch.int32).repeat(4, 2)  # every level, even and odd positions
    data = pack_levels(q, fmt)
    assert data.dtype == TORCH_STORAGE[fmt.kind] and data.shape[-1] == q.shape[-1] // fmt.per_byte
    assert torch.equal(unpack_levels(data, fmt), q)


def test_int4_nibble_order_and_int8_offset():
    q = torch.tensor([[3, 12]], dtype=torch.int32)
    assert pack_levels(q, KVQuant("int4")).tolist() == [[3 | (12 << 4)]]
    assert pack_levels(torch.tensor([[0, 128, 255]], dtype=torch.int32), KVQuant("int8")).tolist() == [[-128, 0, 127]]


@pytest.mark.parametrize("fmt", INT_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_int_error_bound(fmt, dtype):
    """Dequantized values sit within half a step of the input (plus the clamp a 16-bit zero can cause, bounded by
    the zero's rounding), and the extremes of each row round-trip to the first and last level."""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(64, 4, 128, generator=g) * 3 + 0.5).to(dtype)
    data, params = quantize_int(x, fmt)
    assert params.dtype == TORCH_PARAMS[fmt.param_dtype] and params.shape == (64, 4, 2)
    y = dequantize_int(data, params, fmt)
    scale, zero = params[..., 0].float(), params[..., 1].float()
    lo = x.float().amin(-1)
    slack = (zero - lo).abs() + (x.float().amax(-1) - lo) * 2.0 ** -7 + 1e-6  # param rounding (bf16: 8 bits)
    err = (y - x.float()).abs().amax(-1)
    assert bool((err <= scale / 2 + slack).all())
    if fmt.param_dtype == "float32":
        assert bool((err <= scale / 2 * (1 + 1e-5) + 1e-6).all())
    q = unpack_levels(data, fmt)
    assert int(q.min()) == 0 and int(q.max()) == fmt.levels


def test_int_unit_normal_accuracy_figures():
    """The figures docs/quantized_kv.md quotes: max |dequant - x| on unit-normal rows of d128."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4096, 128, generator=g).to(torch.bfloat16)
    worst = {}
    for fmt in INT_FORMATS:
        data, params = quantize_int(x, fmt)
        worst[fmt.name] = float((dequantize_int(data, params, fmt) - x.float()).abs().max())
    assert worst["int8_f32"] < 0.02 and worst["int8_f16"] < 0.02
    assert worst["int4_f32"] < 0.4


def test_constant_row_and_zero_scale():
    x = torch.full((2, 16), 1.5, dtype=torch.float16)
    fmt = KVQuant("int8", "float16")
    data, params = quantize_int(x, fmt)
    assert params[..., 0].abs().max() == 0
    assert torch.equal(dequantize_int(data, params, fmt), x.float())


def test_levels_use_rounded_params():
    """The levels are computed against the stored (rounded) pair, half to even."""
    fmt = KVQuant("int8", "float16")
    scale = torch.tensor([0.5], dtype=torch.float16)
    zero = torch.tensor([-1.0], dtype=torch.float16)
    x = torch.tensor([[-1.0, -0.75, -0.25, 0.25, 200.0]])
    assert int_levels(x, scale, zero, fmt).tolist() == [[0, 0, 2, 2, 255]]
    s, z = int_params(torch.tensor([[0.0, 1.0]]), fmt)
    assert s.dtype == torch.float16 and float(s) == float(torch.tensor(1 / 255).half()) and float(z) == 0.0


def test_fp8_roundtrip():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 33, 4, 64, generator=g).to(torch.bfloat16) * 10
    descale = fp8_descale(x, dims=(1, 3))  # (batch, heads)
    assert descale.shape == (2, 4)
    data = quantize_fp8(x, descale[:, None, :, None])
    assert data.dtype == torch.float8_e4m3fn
    assert float(data.float().abs().max()) == FP8_MAX  # the largest value of each (batch, head) maps to 448
    y = dequantize_fp8(data, descale[:, None, :, None])
    rel = ((y - x.float()).abs() / x.float().abs().clamp_min(1e-3 * float(x.float().abs().max())))
    assert float(rel.max()) <= 2.0 ** -4 + 1e-6  # 3 mantissa bits: half an ulp is 2^-4 relative
    assert torch.equal(quantize_fp8(torch.tensor([1e6, -1e6]), torch.tensor(1.0)).float(),
                       torch.tensor([FP8_MAX, -FP8_MAX]))
