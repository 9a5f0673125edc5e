"""CTA maps: grid ↔ (query tile, head, batch) (TurboMind's ``AttentionCtaMap``)."""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Int32


@dataclass(frozen=True)
class AttentionCtaMap:
    """``blockIdx = (query tile, head, batch)``: CTAs of one head run together and share K/V in L2.

    With ``heavy_first`` (used for causal masks) the query tiles run last-to-first, so the tiles
    with the most KV work start first and the short ones fill the tail of the wave.
    """

    heavy_first: bool | None = None  # None: decided by the mask (on for a right bound)

    def for_mask(self, mask) -> AttentionCtaMap:
        if self.heavy_first is not None:
            return self
        return AttentionCtaMap(heavy_first=mask.has_right)

    @staticmethod
    def grid(num_q_tiles: Int32, num_heads: Int32, batch: Int32) -> tuple:
        return (num_q_tiles, num_heads, batch)

    @cute.jit
    def tile_coords(self, num_q_tiles: Int32) -> tuple:
        bx, head, batch = cute.arch.block_idx()
        q_tile = bx
        if cutlass.const_expr(self.heavy_first):
            q_tile = num_q_tiles - 1 - bx
        return q_tile, head, batch

