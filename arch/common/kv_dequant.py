"""Dequantization of K/V operands: the Impl's step between the shared-memory load and the MMA (TurboMind's
``Impl`` converting its K/V fragments after ``Load``), so the tensor cores still see fp16/bf16.

A quantized K/V ring slot holds the tile's data (8-bit elements: int8 levels, int4 level pairs, or fp8) as rows
padded by 16 bytes (row stride ``cols + 16``: the eight rows an MMA fragment's lanes read fall in distinct banks,
and every address is a thread base plus a constant, where a swizzle costs address math per load) followed, for
the integer formats, by the tile's ``(rows, 2)`` (scale, zero) pairs. :class:`KVDequant` gives the Impl logical
``(rows, head_dim, slots)`` views of both, element for element like the 16-bit ring it replaces: the data view
maps element ``(n, d)`` to the byte holding it (an int4 byte serves two columns), the scale and zero views
broadcast a row's pair along ``d`` (stride 0). An Impl partitions those views exactly as it partitions the 16-bit
ring, and :meth:`KVDequant.load` fills an MMA fragment from them:

* integer formats: a fragment's bytes sit four to a 32-bit register; ``prmt`` moves each into the mantissa of
  ``2^23`` (``0x4B0000xx``: ``2^23 + level`` exactly), one subtraction gives the level, one FMA ``level * scale +
  zero`` (int8's stored ``level - 128``: the register's bytes XOR ``0x80`` first, once per four);
* fp8: a conversion (hardware e4m3 -> f16 pairs); the descale factors act outside the Impl (K's on the softmax
  scale, V's on O).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Uint8, Uint32
from cutlass._mlir.dialects import llvm
from cutlass.cutlass_dsl import T

from cute_attention.arch.common.combined_iterator import Pair
from cute_attention.arch.common.smem_layouts import transposed_view
from cute_attention.kv.quant import KVQuant

STORAGE = {"int8": cutlass.Int8, "int4": cutlass.Uint8, "fp8": cutlass.Float8E4M3FN}
PARAMS = {"float16": cutlass.Float16, "bfloat16": cutlass.BFloat16, "float32": cutlass.Float32}
EXP_TRICK = 0x4B000000  # fp32 bits of 2^23: OR-ing a level into the mantissa gives 2^23 + level exactly
EXP_BIAS = 8388608.0
ROW_PAD = 16  # bytes after each stored row: conflict-free fragment loads without a swizzle


def prmt_exp(word, byte: int) -> Float32:
    """``2^23 + byte`` of a 32-bit register's byte ``byte`` as fp32 (``prmt`` with the exponent's bytes)."""
    return Float32(llvm.inline_asm(T.f32(), [Uint32(word).ir_value(), Uint32(EXP_TRICK).ir_value()],
                                   f"prmt.b32 $0, $1, $2, {0x7640 + byte};", "=f,r,r", has_side_effects=False,
                                   is_align_stack=False, asm_dialect=llvm.AsmDialect.AD_ATT))


@dataclass(frozen=True)
class QuantOperand:
    """One thread's partitions of a quantized operand (CuTe naming as the fragment they fill): data, scale and zero
    ``(MMA, MMA_N, MMA_K, slot)`` views, and the ``(MMA, MMA_N, MMA_K)`` tile coordinates (int4: which nibble)."""

    q: Any
    scale: Any
    zero: Any
    coords: Any


class KVDequant:
    """The dequantization step of one format for ``(rows, head_dim)`` K/V tiles of ``dtype`` operands."""

    def __init__(self, fmt: KVQuant, dtype: type[cutlass.Numeric], rows: int, head_dim: int):
        self.fmt = fmt
        self.dtype = dtype
        self.rows = rows
        self.head_dim = head_dim
        self.storage = STORAGE[fmt.kind]
        self.param_dtype = PARAMS[fmt.param_dtype] if fmt.has_params else None
        self.cols = fmt.stored_cols(head_dim)

    # ---- shared memory (host-side sizes, device-side views) ----
    @property
    def row_stride(self) -> int:
        return self.cols + ROW_PAD

    def data_bytes(self) -> int:
        return self.rows * self.row_stride

    def param_bytes(self) -> int:
        return self.rows * 2 * self.param_dtype.width // 8 if self.fmt.has_params else 0

    def slot_bytes(self) -> int:
        """One ring slot: the data tile, then the parameter tile (16-byte aligned after the data)."""
        return self.data_bytes() + self.param_bytes()

    def ring(self, ptr: cute.Pointer, slots: int):
        """The ring as the gmem iterators write it: ``(rows, cols, slots)`` data tiles, and for the integer formats
        a :class:`~cute_attention.arch.common.combined_iterator.Pair` with the ``(rows, 2, slots)`` parameters."""
        data = cute.make_tensor(cute.recast_ptr(ptr, dtype=self.storage), cute.make_layout(
            (self.rows, self.cols, slots), stride=(self.row_stride, 1, self.data_bytes())))
        if not self.fmt.has_params:
            return data
        params_ptr = cute.recast_ptr(ptr + self.data_bytes() * slots, dtype=self.param_dtype)
        params = cute.make_tensor(params_ptr, cute.make_layout((self.rows, 2, slots),
                                                               stride=(2, 1, 2 * self.rows)))
        return Pair(data, params)

    def operand_views(self, ring, transposed: bool) -> tuple:
        """Logical ``(rows, head_dim, slots)`` views (``(head_dim, rows, slots)`` when ``transposed``: V for P·V) of
        the data, scales and zeros (None for fp8)."""
        data = ring.data if self.fmt.has_params else ring
        slots = cute.size(data.shape[2])
        if self.fmt.per_byte == 2:
            # element (n, (nibble, byte), s) -> byte (n, byte, s) of the stored tile
            data = cute.make_tensor(data.iterator, cute.make_layout(
                (self.rows, (2, self.cols), slots), stride=(self.row_stride, (0, 1), self.data_bytes())))
        scale = zero = None
        if self.fmt.has_params:
            bcast = cute.make_layout((self.rows, self.head_dim, slots), stride=(2, 0, 2 * self.rows))
            scale = cute.make_tensor(ring.params.iterator, bcast)
            zero = cute.make_tensor(ring.params.iterator + 1, bcast)
        if transposed:
            data = transposed_view(data)
            if scale is not None:
                scale, zero = transposed_view(scale), transposed_view(zero)
        return data, scale, zero

    # ---- the dequant step ----
    @cute.jit
    def load(self, op: QuantOperand, slot, k: cutlass.Constexpr, frag: cute.Tensor, col_mode: cutlass.Constexpr):
        """Fill k-block ``k`` of the MMA fragment ``frag`` ``(MMA, MMA_N)`` from ring ``slot``: shared-memory loads
        of the stored bytes (and parameters), then the conversion in registers. ``col_mode``: which coordinate of
        ``op.coords`` is the head-dim column (1 for K, 0 for transposed V)."""
        src = op.q[None, None, k, slot]
        rq = cute.make_rmem_tensor(src.shape, self.storage)  # compact: fragment element i is byte i
        cute.autovec_copy(src, rq)
        if cutlass.const_expr(self.fmt.kind == "fp8"):
            frag.store(rq.load().to(self.dtype))
        else:
            n = cute.size(frag)
            words = cute.recast_tensor(rq, Uint32)
            rs = cute.make_rmem_tensor(src.shape, self.param_dtype)
            rz = cute.make_rmem_tensor(src.shape, self.param_dtype)
            cute.autovec_copy(op.scale[None, None, k, slot], rs)  # broadcast loads: one per row after CSE
            cute.autovec_copy(op.zero[None, None, k, slot], rz)
            levels = cute.make_rmem_tensor(frag.shape, Float32)
            if cutlass.const_expr(self.fmt.kind == "int8"):
                for w in cutlass.range_constexpr(n // 4):
                    word = words[w] ^ Uint32(0x80808080)  # stored level - 128 -> level, four at once
                    for b in cutlass.range_constexpr(4):
                        levels[4 * w + b] = prmt_exp(word, b) - Float32(EXP_BIAS)
            else:
                raw = cute.recast_tensor(rq, Uint8)
                for i in cutlass.range_constexpr(n):
                    nibble = (Uint32(op.coords[None, None, k][i][col_mode]) & Uint32(1)) * Uint32(4)
                    bits = ((Uint32(raw[i]) >> nibble) & Uint32(15)) | Uint32(EXP_TRICK)
                    levels[i] = _as_f32(bits) - Float32(EXP_BIAS)
            frag.store((levels.load() * rs.load().to(Float32) + rz.load().to(Float32)).to(self.dtype))


def _as_f32(bits) -> Float32:
    """The fp32 whose bits are ``bits``."""
    return Float32(llvm.bitcast(T.f32(), Uint32(bits).ir_value()))
