"""Sm80 Impl: m16n8k16 ``mma.sync`` (HMMA.16816) with ldmatrix operand loads."""

from __future__ import annotations

from dataclasses import dataclass

import cutlass

from cute_attention.arch.warp_mma_impl import ImplTiles, WarpMmaImpl


class Impl16816(WarpMmaImpl):
    mma_k = 16
    name = "mma16816"


@dataclass(frozen=True)
class Mma16816(ImplTiles):
    """Recipe for :class:`Impl16816` (tile sizes and warp arrangement)."""

    family: str = "mma16816"

    def build(self, dtype: type[cutlass.Numeric], head_dim: int) -> Impl16816:
        return Impl16816(dtype, head_dim, self)
