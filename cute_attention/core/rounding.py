"""fp32 steps with the IEEE rounding a torch reference computes, for device code that must match it bit for bit
(the quantizing KV append): the DSL leaves the lowering of ``/`` and rounding to the compiler, these pin the PTX."""

from __future__ import annotations

from cutlass import Float32
from cutlass._mlir.dialects import llvm
from cutlass.cutlass_dsl import T


def _f32(ptx: str, *args) -> Float32:
    constraints = "=f," + ",".join("f" for _ in args)
    return Float32(llvm.inline_asm(T.f32(), [Float32(a).ir_value() for a in args], ptx, constraints,
                                   has_side_effects=False, is_align_stack=False,
                                   asm_dialect=llvm.AsmDialect.AD_ATT))


def div_rn(a, b) -> Float32:
    """``a / b`` correctly rounded (torch's fp32 division)."""
    return _f32("div.rn.f32 $0, $1, $2;", a, b)


def rcp_rn(a) -> Float32:
    """``1 / a`` correctly rounded."""
    return _f32("rcp.rn.f32 $0, $1;", a)


def rint(a) -> Float32:
    """``a`` rounded to the nearest integer, ties to even (``torch.round``)."""
    return _f32("cvt.rni.f32.f32 $0, $1;", a)


def sub_rn(a, b) -> Float32:
    """``a - b``, never fused with a later multiply."""
    return _f32("sub.rn.f32 $0, $1, $2;", a, b)


def mul_rn(a, b) -> Float32:
    """``a * b``, never fused with an add."""
    return _f32("mul.rn.f32 $0, $1, $2;", a, b)
