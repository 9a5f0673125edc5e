"""The m16n8k8 family (Turing's ``mma.sync``, HMMA.1688) on the fragment Impl.

K is read in (s32, d8) chunks and V in (d32, s8) chunks: one ldmatrix.x4 covers four 8x8 matrices
along N of a k = 8 slice (the tiled MMA's N × K extent is 32 × 8); Q's A fragments come in pairs of
8x8 matrices (16 rows × 8). TurboMind pairs this Impl with the synchronous Sm70 mainloop and keeps Q in
registers, so Q's shared memory joins the K/V ring (``q_in_regs``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass

from cute_attention.arch.common.fragment_impl import FragmentImpl, FragmentTiles


class Impl1688(FragmentImpl):
    mma_k = 8
    perm_nk = (32, 8)
    name = "mma1688"
    mma_sass = "HMMA.1688.F32"


@dataclass(frozen=True)
class Mma1688(FragmentTiles):
    """Recipe for :class:`Impl1688`."""

    family: str = "mma1688"

    def build(self, dtype: type[cutlass.Numeric], head_dim: int, kv_quant=None) -> Impl1688:
        return Impl1688(dtype, head_dim, self, kv_quant)
