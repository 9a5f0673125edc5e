"""Quantized KV cache formats: how a cache stores K and V in fewer bytes (TurboMind's int8/int4 KV, FlashAttention-3's
fp8 KV), and the reference quantizer every writer must match byte for byte.

Formats (:class:`KVQuant`, frozen: part of the compile key):

* ``int8`` / ``int4``: asymmetric per (token, KV head). ``scale = (max - min) / (2^bits - 1)``, ``zero = min``,
  ``q = round((x - zero) / scale)`` clamped to ``[0, 2^bits - 1]``, dequant ``q * scale + zero``. The (scale,
  zero) pairs live in a parameter tensor beside the data, shaped like the cache with ``d`` replaced by 2 (so a page
  of data and its parameters share a block index), of dtype ``param_dtype``. int8 data is ``torch.int8`` holding
  ``q - 128``; int4 data is ``torch.uint8`` with two values per byte along ``d`` (even ``d`` in the low nibble).
* ``fp8``: ``float8_e4m3fn`` data with one fp32 descale factor per (batch, KV head) (FlashAttention-3's
  ``k_descale`` / ``v_descale``): dequant ``x8 * descale``; quantize ``clamp(x / descale, -448, 448)`` rounded to
  nearest.

Parameters are rounded to ``param_dtype`` *before* the data is quantized against them, so the stored pair is exactly
the one the data was quantized with (a 16-bit ``zero`` above the true minimum only clamps, it never shifts a
level). Every step is one IEEE-rounded fp32 operation (subtract, multiply by the rounded reciprocal, round half to
even), which the device append reproduces instruction for instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

KV_QUANT_KINDS = ("int8", "int4", "fp8")
PARAM_DTYPES = ("float16", "bfloat16", "float32")
FP8_MAX = 448.0  # largest finite float8_e4m3fn
PARAM_BITS = {"float16": 16, "bfloat16": 16, "float32": 32}
STORAGE_DTYPES = {"int8": "int8", "int4": "uint8", "fp8": "float8_e4m3fn"}  # torch dtype names of the data


@dataclass(frozen=True)
class KVQuant:
    """A quantized KV format (``kind``) and, for the integer kinds, the dtype of its (scale, zero) pairs."""

    kind: str = "int8"
    param_dtype: str = "float32"

    def __post_init__(self):
        if self.kind not in KV_QUANT_KINDS:
            raise ValueError(f"kind must be one of {KV_QUANT_KINDS}, got {self.kind!r}")
        if self.param_dtype not in PARAM_DTYPES:
            raise ValueError(f"param_dtype must be one of {PARAM_DTYPES}, got {self.param_dtype!r}")
        if self.kind == "fp8" and self.param_dtype != "float32":
            raise ValueError(f"fp8 descale factors are float32, got param_dtype {self.param_dtype!r}")

    @property
    def name(self) -> str:
        """``int8_f16``, ``int4_f32``, ``fp8``: the format in variant names and labels."""
        short = {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}[self.param_dtype]
        return self.kind if self.kind == "fp8" else f"{self.kind}_{short}"

    @property
    def bits(self) -> int:
        return 4 if self.kind == "int4" else 8

    @property
    def levels(self) -> int:
        """Largest quantized level ``2^bits - 1`` (integer kinds)."""
        return (1 << self.bits) - 1

    @property
    def offset(self) -> int:
        """What is subtracted from a level before it is stored (int8 keeps ``q - 128`` in a signed byte)."""
        return 128 if self.kind == "int8" else 0

    @property
    def per_byte(self) -> int:
        """Values per stored byte along ``d``."""
        return 2 if self.kind == "int4" else 1

    @property
    def has_params(self) -> bool:
        """Per-token (scale, zero) tensors (integer kinds); fp8 has per-(batch, head) descale factors instead."""
        return self.kind != "fp8"

    @property
    def storage_dtype(self) -> str:
        """The data's torch dtype name."""
        return STORAGE_DTYPES[self.kind]

    def stored_cols(self, head_dim: int) -> int:
        """Last-dim extent of the data tensor for ``head_dim`` values."""
        return head_dim // self.per_byte

    def bytes_per_token_head(self, head_dim: int) -> int:
        """Bytes one (token, KV head) row of K or V costs, data and parameters."""
        params = 2 * PARAM_BITS[self.param_dtype] // 8 if self.has_params else 0
        return self.stored_cols(head_dim) + params
