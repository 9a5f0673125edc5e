"""SIMT Impl: attention on CUDA-core FMA (TurboMind's ``Impl<MMA_SIMT, ...>``), any 16-bit input type.

A warp step is 8 rows: lane bits 2..4 pick the row, lane bits 0..1 the column. For S = Q·Kᵀ a lane owns
one score per step (8 x 4 per warp; its columns are 4 apart) and reads four k of its Q row and of its K
row (LDS.64 each); for O += P·V it owns four consecutive d (8 x 16 per warp) and reads four k of its P row
and a 4 x 4 block of V (four LDS.64). Operands are widened to fp32 once per k step (``MmaUniversalOp``
takes one type for A, B and C) and each step is a thread-local ``cute.gemm`` of the universal FMA atom:
FFMA only, no HMMA.
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Float32

from cute_attention.arch.common.shared_operand_impl import (
    K_STEP,
    OperandMap,
    SharedOperandImpl,
    SharedOperandTiles,
    WarpAtom,
)

_BCAST = (2, 0, 0)
_ROWS = ((2, 0, 1), (2, 0, 2), (2, 0, 4))  # lane bits 2..4 -> row 0..7 of the step
ATOM_SIMT = WarpAtom(
    m=8,
    n_s=4,
    n_o=16,
    a=OperandMap(lanes=(_BCAST, _BCAST, *_ROWS), values=((4, 1, 1),)),
    b_col=OperandMap(lanes=((2, 0, 1), (2, 0, 2), _BCAST, _BCAST, _BCAST), values=((4, 1, 1),)),
    # V block: four consecutive d (columns) of four consecutive kv rows
    b_row=OperandMap(lanes=((2, 1, 4), (2, 1, 8), _BCAST, _BCAST, _BCAST), values=((4, 1, 1), (4, 0, 1))),
    c_s=OperandMap(lanes=((2, 1, 1), (2, 1, 2), *_ROWS), values=((1, 1, 1),)),
    c_o=OperandMap(lanes=((2, 1, 4), (2, 1, 8), *_ROWS), values=((4, 1, 1),)),
    row_lanes=(2, 1),
)


class ImplSimt(SharedOperandImpl):
    name = "simt"
    atom = ATOM_SIMT
    sass_required = ("LDS.64", "FFMA")
    sass_forbidden = ("LDSM", "HMMA")

    def prepare(self, frag: cute.Tensor) -> cute.Tensor:
        wide = cute.make_rmem_tensor(frag.shape, Float32)
        wide.store(frag.load().to(Float32))
        return wide

    def mma(self, acc: cute.Tensor, a: cute.Tensor, b: cute.Tensor, pv: bool):
        """One step as thread-local ``cute.gemm`` calls of the 1x1x1 FMA atom, (M, K) x (N, K) => (M, N):
        one output at a time, so each is a chain of four FFMA (this order keeps d >= 192 spill-free)."""
        atom = cute.make_mma_atom(cute.nvgpu.MmaUniversalOp(Float32))
        row = cute.make_layout((1, K_STEP), stride=(0, 1))
        tA = cute.make_tensor(a.iterator, row)
        for j in range(cute.size(acc)):  # O: four consecutive d, V block (4 d, 4 k) with d fastest; S: one
            tB = cute.make_tensor(b.iterator + j, cute.make_layout((1, K_STEP), stride=(0, cute.size(acc))))
            tC = cute.make_tensor(acc.iterator + j, cute.make_layout((1, 1), stride=(0, 0)))
            cute.gemm(atom, tC, tA, tB, tC)


@dataclass(frozen=True)
class Simt(SharedOperandTiles):
    """Recipe for :class:`ImplSimt`."""

    family: str = "simt"

    def build(self, dtype: type[cutlass.Numeric], head_dim: int) -> ImplSimt:
        return ImplSimt(dtype, head_dim, self)
