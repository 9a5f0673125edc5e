"""The m8n8k4 family (Volta's ``mma.sync``, HMMA.884 on Volta) on the shared-operand Impl, through inline PTX.

One warp-wide instruction is four independent 8x8x4 products, one per quad-pair (lanes 4q..4q+3 and
4q+16..4q+19). The quad-pairs are arranged 2 x 2, so a warp step is 16 x 16 x 4: lane bit 2 picks the
8-row half, lane bit 3 the 8-column half (CuTe's ``SM70_8x4_Row`` / ``SM70_8x4_Col`` / ``SM70_8x8_32b``
maps, tiled). A lane holds four k-consecutive values of one row of A (LDS.64 from Q or P), four k of one
column of B for Q·Kᵀ (``row.col``: LDS.64 from a K row) and four columns of one k of B for P·V
(``row.row``: LDS.64 from a V row), and eight fp32 accumulators ``i``: row ``(lane&1) + (i&2) + 4·(lane≥16)``,
column ``(i&1) + (lane&2) + (i&4)`` inside its quad-pair's 8 x 8. fp16 only (the instruction has no bf16 form).

On Ampere/Hopper ptxas has no tensor-core form of m8n8k4 and emulates it on CUDA cores
(``tests/test_sm70_mma.py``), so the ``sm70`` config runs Volta's algorithm at CUDA-core speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.arch.common.shared_operand_impl import OperandMap, SharedOperandImpl, SharedOperandTiles, WarpAtom
from cute_attention.arch.sm70.mma884 import mma_m8n8k4

_BCAST = (2, 0, 0)
ATOM_884 = WarpAtom(
    m=16,
    n_s=16,
    n_o=16,
    # lane bits 0, 1 -> row 0..3 of the quad-pair's 8, bit 2 -> 8-row half, bit 3 -> (B's half), bit 4 -> +4 rows
    a=OperandMap(lanes=((2, 0, 1), (2, 0, 2), (2, 0, 8), _BCAST, (2, 0, 4)), values=((4, 1, 1),)),
    b_col=OperandMap(lanes=((2, 0, 1), (2, 0, 2), _BCAST, (2, 0, 8), (2, 0, 4)), values=((4, 1, 1),)),
    b_row=OperandMap(lanes=((2, 0, 1), (2, 0, 2), _BCAST, (2, 1, 8), (2, 1, 4)), values=((4, 1, 1),)),
    c_s=OperandMap(lanes=((2, 0, 1), (2, 1, 2), (2, 0, 8), (2, 1, 8), (2, 0, 4)),
                   values=((2, 1, 1), (2, 0, 2), (2, 1, 4))),
    c_o=OperandMap(lanes=((2, 0, 1), (2, 1, 2), (2, 0, 8), (2, 1, 8), (2, 0, 4)),
                   values=((2, 1, 1), (2, 0, 2), (2, 1, 4))),
    row_lanes=(2, 8),
)


class Impl884(SharedOperandImpl):
    name = "mma884"
    atom = ATOM_884
    dtypes = ("float16",)
    sass_forbidden = ("LDSM", "HMMA")  # ptxas's CUDA-core emulation on sm_80/sm_90
    sass_required = ("LDS.64", "FFMA", "SHFL")

    def check_tiles(self) -> None:
        if self.dtype is not cutlass.Float16:
            raise ValueError(f"{self.name} takes float16 operands only, got {self.dtype}")
        super().check_tiles()

    def prepare(self, frag: cute.Tensor) -> cute.Tensor:
        """Pairs of fp16 as the instruction's 32-bit registers: (4, X) halves -> (2, X) words."""
        return cute.recast_tensor(frag, Int32)

    def mma(self, acc: cute.Tensor, a: cute.Tensor, b: cute.Tensor, pv: bool):
        d = mma_m8n8k4((a[0], a[1]), (b[0], b[1]), [acc[i] for i in range(8)], b_row=pv)
        for i in range(8):
            acc[i] = d[i]


@dataclass(frozen=True)
class Mma884(SharedOperandTiles):
    """Recipe for :class:`Impl884`."""

    family: str = "mma884"

    def build(self, dtype: type[cutlass.Numeric], head_dim: int) -> Impl884:
        return Impl884(dtype, head_dim, self)
