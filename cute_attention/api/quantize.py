"""Quantizing K/V on the torch side: the reference quantizer of :mod:`cute_attention.kv.quant`'s formats (which
the device append matches byte for byte), its inverse, and the public :func:`quantize_kv` / :func:`dequantize_kv`
that make a quantized cache's tensors from fp16/bf16 K or V."""

from __future__ import annotations

import torch

from cute_attention.kv.quant import FP8_MAX, KVQuant

TORCH_PARAMS = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
TORCH_STORAGE = {"int8": torch.int8, "int4": torch.uint8, "fp8": torch.float8_e4m3fn}


def kv_quant_of(dtype: torch.dtype, param_dtype: torch.dtype | None = None) -> KVQuant | None:
    """The format a cache tensor's dtype stands for (None: an unquantized fp16/bf16 cache). ``param_dtype``: the
    dtype of the (scale, zero) tensor of an integer cache."""
    kind = {torch.int8: "int8", torch.uint8: "int4", torch.float8_e4m3fn: "fp8"}.get(dtype)
    if kind is None:
        return None
    if kind == "fp8":
        return KVQuant("fp8")
    names = {v: k for k, v in TORCH_PARAMS.items()}
    if param_dtype not in names:
        raise TypeError(f"the (scale, zero) parameters must be float16, bfloat16 or float32, got {param_dtype}")
    return KVQuant(kind, names[param_dtype])




# ---- integer formats: the reference quantizer (torch, any device) ----
def int_params(x: torch.Tensor, fmt: KVQuant) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, zero) of every row of ``x (..., d)``, rounded to ``fmt.param_dtype`` (returned in that dtype)."""
    xf = x.float()
    lo, hi = xf.amin(dim=-1), xf.amax(dim=-1)
    inv_levels = torch.tensor(1.0 / fmt.levels, dtype=torch.float32, device=x.device)
    scale = ((hi - lo) * inv_levels).to(TORCH_PARAMS[fmt.param_dtype])
    return scale, lo.to(TORCH_PARAMS[fmt.param_dtype])


def int_levels(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, fmt: KVQuant) -> torch.Tensor:
    """Levels ``q`` (int32, in ``[0, levels]``) of ``x (..., d)`` against the rounded parameters ``(...)``: ``(x -
    zero) * (1 / scale)`` rounded half to even; a row whose scale is 0 is all zero levels."""
    s, z = scale.float().unsqueeze(-1), zero.float().unsqueeze(-1)
    inv = torch.where(s > 0, 1.0 / torch.where(s > 0, s, 1.0), 0.0)
    q = torch.round((x.float() - z) * inv)
    return q.clamp(0, fmt.levels).to(torch.int32)


def pack_levels(q: torch.Tensor, fmt: KVQuant) -> torch.Tensor:
    """Stored data of levels ``q (..., d)``: int8 ``q - 128``; int4 two levels a byte (even ``d`` low nibble)."""
    if fmt.kind == "int8":
        return (q - fmt.offset).to(torch.int8)
    lo, hi = q[..., 0::2], q[..., 1::2]
    return (lo | (hi << 4)).to(torch.uint8)


def unpack_levels(data: torch.Tensor, fmt: KVQuant) -> torch.Tensor:
    """Levels (int32, ``(..., d)``) of stored data: the inverse of :func:`pack_levels`."""
    if fmt.kind == "int8":
        return data.to(torch.int32) + fmt.offset
    b = data.to(torch.int32)
    return torch.stack((b & 15, b >> 4), dim=-1).flatten(-2)


def quantize_int(x: torch.Tensor, fmt: KVQuant) -> tuple[torch.Tensor, torch.Tensor]:
    """``x (..., d)`` fp16/bf16/fp32 -> (stored data ``(..., d / per_byte)``, params ``(..., 2)`` = (scale, zero))."""
    scale, zero = int_params(x, fmt)
    data = pack_levels(int_levels(x, scale, zero, fmt), fmt)
    return data, torch.stack((scale, zero), dim=-1)


def dequantize_int(data: torch.Tensor, params: torch.Tensor, fmt: KVQuant) -> torch.Tensor:
    """fp32 values ``q * scale + zero`` of stored data and its (scale, zero) params."""
    q = unpack_levels(data, fmt).float()
    return q * params[..., 0:1].float() + params[..., 1:2].float()


# ---- fp8 ----
def fp8_descale(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """fp32 descale factors ``amax / 448`` over ``dims`` of ``x`` (1 where the block is all zero)."""
    amax = x.float().abs().amax(dim=dims)
    return torch.where(amax > 0, amax / FP8_MAX, 1.0)


def quantize_fp8(x: torch.Tensor, descale: torch.Tensor) -> torch.Tensor:
    """``x`` divided by its (broadcast) descale, clamped to the finite e4m3 range, rounded to nearest."""
    return (x.float() / descale.float()).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)


def dequantize_fp8(data: torch.Tensor, descale: torch.Tensor) -> torch.Tensor:
    return data.float() * descale.float()


# ---- public API ----
KINDS = {"int8": "int8", "int4": "int4", "fp8": "fp8"}


def quantize_kv(x: torch.Tensor, kind: str, *, param_dtype: torch.dtype | None = None,
                descale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize a K or V cache ``x (dim0, rows, nheads_kv, d)`` (contiguous ``(batch, seqlen, ...)`` or paged
    ``(num_blocks, block_size, ...)``) of fp16/bf16 values for :func:`~cute_attention.attention_with_kvcache`.

    ``kind="int8"`` / ``"int4"``: returns ``(data, params)``: int8 ``(..., d)`` or uint8 ``(..., d / 2)`` data and
    ``(..., 2)`` (scale, zero) pairs of ``param_dtype`` (default ``x.dtype``: as accurate as float32 pairs on
    unit-normal data, docs/quantized_kv.md). ``kind="fp8"``: returns ``(data, descale)``: float8_e4m3fn data and
    fp32 ``(dim0, nheads_kv)`` descale factors (``amax / 448`` over each (dim0, head), i.e. per (batch, head) of a
    contiguous cache); pass ``descale`` (broadcastable to ``x``'s (dim0, head)) to choose them, e.g. per head for a
    paged cache.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float16, torch.bfloat16):
        raise TypeError(f"x must be float16 or bfloat16, got {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must be (dim0, rows, nheads_kv, head_dim), got shape {tuple(x.shape)}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}, got {kind!r}")
    if kind == "fp8":
        if param_dtype is not None:
            raise ValueError("param_dtype is for int8/int4; fp8 descale factors are float32")
        if descale is None:
            descale = fp8_descale(x, dims=(1, 3))
        elif not isinstance(descale, torch.Tensor) or descale.dtype != torch.float32:
            raise TypeError("descale must be a float32 torch.Tensor")
        elif descale.dim() != 2:
            raise ValueError(f"descale must be (dim0 or 1, nheads_kv), got shape {tuple(descale.shape)}")
        descale = descale.expand(x.shape[0], x.shape[2])
        return quantize_fp8(x, descale[:, None, :, None]), descale
    if descale is not None:
        raise ValueError("descale is for fp8; int8/int4 caches carry (scale, zero) pairs")
    names = {v: k for k, v in TORCH_PARAMS.items()}
    pd = x.dtype if param_dtype is None else param_dtype
    if pd not in names:
        raise TypeError(f"param_dtype must be float16, bfloat16 or float32, got {pd}")
    if kind == "int4" and x.shape[-1] % 2:
        raise ValueError(f"int4 packs two values a byte: head_dim must be even, got {x.shape[-1]}")
    return quantize_int(x, KVQuant(kind, names[pd]))


def dequantize_kv(data: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """fp32 values of a quantized cache: ``data`` with its (scale, zero) ``params`` (int8 / uint8 data), or fp8
    ``data`` with its ``(dim0, nheads_kv)`` descale factors."""
    if data.dtype == torch.float8_e4m3fn:
        return dequantize_fp8(data, params[:, None, :, None])
    fmt = kv_quant_of(data.dtype, params.dtype)
    if fmt is None:
        raise TypeError(f"data must be int8, uint8 (int4) or float8_e4m3fn, got {data.dtype}")
    return dequantize_int(data, params, fmt)
