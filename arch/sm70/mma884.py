"""Volta's ``mma.sync.aligned.m8n8k4`` (HMMA.884 on sm_70) as a DSL operation, through inline PTX.

The DSL has no sm_70 MMA atom, so this wraps the PTX instruction with ``llvm.inline_asm``: fp16 A and B
(two f16x2 registers each), fp32 C/D (eight registers). A warp runs four independent 8x8x4 products,
one per quad-pair (lanes 0-3 + 16-19, 4-7 + 20-23, ...). ptxas accepts the instruction for sm_80 and
sm_90a but has no tensor-core form for it there: it lowers to a called routine of SHFL, HADD2, FFMA and
FADD (recorded by ``tests/test_sm70_mma.py``), so on Ampere/Hopper this runs Volta's algorithm on CUDA
cores. :class:`~cute_attention.arch.sm70.impl884.Impl884` (the ``sm70`` config) is built on it.
"""

from __future__ import annotations

from cutlass import Float32, Int32
from cutlass._mlir.dialects import llvm
from cutlass.cutlass_dsl import T, dsl_user_op

PTX = ("mma.sync.aligned.m8n8k4.row.{b}.f32.f16.f16.f32 {{$0,$1,$2,$3,$4,$5,$6,$7}}, {{$8,$9}}, {{$10,$11}}, "
       "{{$12,$13,$14,$15,$16,$17,$18,$19}};")
CONSTRAINTS = ",".join(["=f"] * 8 + ["r"] * 4 + ["f"] * 8)


@dsl_user_op
def mma_m8n8k4(a: tuple, b: tuple, c: list, b_row: bool = False, *, loc=None, ip=None) -> list:
    """``D = A·B + C`` for this lane's share: ``a``, ``b`` = two Int32 (f16x2 each), ``c`` = eight Float32.

    A is row-major (a lane holds four k of one row); B is column-major (``b_row=False``: four k of one
    column, e.g. K rows for Q·Kᵀ) or row-major (``b_row=True``: four columns of one k, e.g. V rows for P·V).
    """
    operands = [Int32(x).ir_value(loc=loc, ip=ip) for x in (*a, *b)]
    operands += [Float32(x).ir_value(loc=loc, ip=ip) for x in c]
    ptx = PTX.format(b="row" if b_row else "col")
    res = llvm.inline_asm(llvm.StructType.get_literal([T.f32()] * 8), operands, ptx, CONSTRAINTS,
                          has_side_effects=False, is_align_stack=False, asm_dialect=llvm.AsmDialect.AD_ATT,
                          loc=loc, ip=ip)
    return [Float32(llvm.extractvalue(T.f32(), res, [i], loc=loc, ip=ip)) for i in range(8)]
