"""What compiled kernels assume of their tensors, and the fake tensors they are compiled against.

Kernels are compiled once per compile key against symbolic shapes and strides, so one build serves every
problem size. The ABI the torch API guarantees (it copies inputs that break it and refuses outputs that do): last
dim contiguous, 16-byte aligned base pointers, every other stride a multiple of 8 elements (16 bytes of a 16-bit
type). The ``fake_*`` helpers build those symbolic tensors; each kernel's parameter record turns its compile-time
flags into a record of them (``fake_args``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass.cute.runtime import make_fake_tensor

from cute_attention.arch.common.kv_dequant import PARAMS, STORAGE

DTYPES = {"float16": cutlass.Float16, "bfloat16": cutlass.BFloat16}
ALIGN_BYTES = 16
STRIDE_DIVISIBILITY = 8  # elements of a 16-bit type per 16 bytes


def runtime(default: Any):
    """A runtime field of a parameter record: a kernel argument, left out of equality (so never part of a compile
    key) and reset by :meth:`KernelRecord.compile_time`."""
    return dataclasses.field(default=default, compare=False, metadata={"runtime": True})


def runtime_fields(record) -> list[str]:
    return [f.name for f in dataclasses.fields(record) if f.metadata.get("runtime")]


class KernelRecord:
    """Base of the kernels' parameter records (frozen dataclasses whose runtime fields are marked by
    :func:`runtime`); a record also provides ``label``, ``build(target)``, ``fake_args()`` and ``launch_args(...)``."""

    ptxas_options = ""

    def compile_time(self):
        """This record with its runtime fields at their defaults: what a compile key holds."""
        return dataclasses.replace(self, **{f.name: f.default for f in dataclasses.fields(self)
                                            if f.metadata.get("runtime")})


def _sym_strides(rank: int):
    return tuple(cute.sym_int64(divisibility=STRIDE_DIVISIBILITY) for _ in range(rank - 1)) + (1,)


def fake_bshd(dtype, head_dim: int):
    """``(batch, seqlen, nheads, head_dim)`` of a 16-bit type."""
    shape = (cute.sym_int(), cute.sym_int(), cute.sym_int(), head_dim)
    return make_fake_tensor(dtype, shape, stride=_sym_strides(4), assumed_align=ALIGN_BYTES)


def fake_lse(splits: bool = False):
    """fp32 ``(batch, nheads, seqlen_q)``, or with ``splits`` ``(splits, batch, nheads, seqlen_q)``."""
    rank = 4 if splits else 3
    shape = tuple(cute.sym_int() for _ in range(rank))
    stride = tuple(cute.sym_int64() for _ in range(rank - 1)) + (1,)
    return make_fake_tensor(cutlass.Float32, shape, stride=stride, assumed_align=4)


def fake_paged(dtype, head_dim: int, block_size: int):
    """A paged K or V cache ``(num_blocks, block_size, nheads_kv, d)`` (block size is compile-time)."""
    shape = (cute.sym_int(), block_size, cute.sym_int(), head_dim)
    return make_fake_tensor(dtype, shape, stride=_sym_strides(4), assumed_align=ALIGN_BYTES)


def fake_quant_cache(dtype, cols: int, block_size: int | None = None):
    """A quantized K or V cache of an 8-bit type, ``(batch, seqlen, nheads_kv, cols)`` or paged ``(num_blocks,
    block_size, nheads_kv, cols)``: 16-byte aligned, strides multiples of 16 elements."""
    rows = cute.sym_int() if block_size is None else block_size
    strides = tuple(cute.sym_int64(divisibility=ALIGN_BYTES) for _ in range(3)) + (1,)
    return make_fake_tensor(dtype, (cute.sym_int(), rows, cute.sym_int(), cols), stride=strides,
                            assumed_align=ALIGN_BYTES)


def fake_quant_params(dtype, block_size: int | None = None):
    """A quantized cache's (scale, zero) pairs, the cache's shape with ``d`` replaced by 2 (pairs aligned)."""
    rows = cute.sym_int() if block_size is None else block_size
    strides = tuple(cute.sym_int64(divisibility=2) for _ in range(3)) + (1,)
    return make_fake_tensor(dtype, (cute.sym_int(), rows, cute.sym_int(), 2), stride=strides,
                            assumed_align=2 * dtype.width // 8)


def fake_descale():
    """fp32 ``(batch, nheads_kv)`` descale factors of an fp8 cache (any strides: 0 broadcasts one factor)."""
    return make_fake_tensor(cutlass.Float32, (cute.sym_int(), cute.sym_int()),
                            stride=(cute.sym_int64(), cute.sym_int64()), assumed_align=4)


def fake_cache_fields(dtype, head_dim: int, block_size: int, kv_quant) -> tuple:
    """Makers of a K or V cache's fakes, each called once per tensor: (data, int8/int4 (scale, zero) pairs or None,
    fp8 descale factors or None). ``block_size`` 0: a contiguous cache; ``kv_quant``: its format or None (16-bit)."""
    block = block_size or None
    none = lambda: None  # noqa: E731
    if kv_quant is None:
        data = (lambda: fake_paged(dtype, head_dim, block_size)) if block else (lambda: fake_bshd(dtype, head_dim))
        return data, none, none
    data = lambda: fake_quant_cache(STORAGE[kv_quant.kind], kv_quant.stored_cols(head_dim), block)  # noqa: E731
    if not kv_quant.has_params:
        return data, none, fake_descale
    return data, lambda: fake_quant_params(PARAMS[kv_quant.param_dtype], block), none


def fake_int32(rank: int):
    """An int32 tensor with a contiguous last dim (block table: rank 2, sequence lengths: rank 1)."""
    shape = tuple(cute.sym_int() for _ in range(rank))
    stride = tuple(cute.sym_int64() for _ in range(rank - 1)) + (1,)
    return make_fake_tensor(cutlass.Int32, shape, stride=stride, assumed_align=4)


def fake_partial_o(head_dim: int):
    """fp32 ``(splits, batch, seqlen_q, nheads, d)``, contiguous rows of 16-byte multiples."""
    shape = (cute.sym_int(), cute.sym_int(), cute.sym_int(), cute.sym_int(), head_dim)
    stride = tuple(cute.sym_int64(divisibility=4) for _ in range(4)) + (1,)
    return make_fake_tensor(cutlass.Float32, shape, stride=stride, assumed_align=ALIGN_BYTES)
