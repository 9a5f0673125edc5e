"""The m16n8k16 family (Ampere's ``mma.sync``, HMMA.16816) on the fragment Impl: what Sm80 adds to
:class:`~cute_attention.arch.common.fragment_impl.FragmentImpl` is the atom's K = 16, one ``ldmatrix.x4`` of a B
operand covering 16 × 16, and the SASS every MMA must take."""

from __future__ import annotations

from dataclasses import dataclass

import cutlass

from cute_attention.arch.common.fragment_impl import FragmentImpl, FragmentTiles


class Impl16816(FragmentImpl):
    mma_k = 16
    perm_nk = (16, 16)
    name = "mma16816"
    mma_sass = "HMMA.16816.F32"


@dataclass(frozen=True)
class Mma16816(FragmentTiles):
    """Recipe for :class:`Impl16816` (tile sizes, warp arrangement and knobs)."""

    family: str = "mma16816"

    def build(self, dtype: type[cutlass.Numeric], head_dim: int, kv_quant=None) -> Impl16816:
        return Impl16816(dtype, head_dim, self, kv_quant)
