"""CTA maps: grid ↔ (query tile, head, batch, KV split) (TurboMind's ``AttentionCtaMap``)."""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.core.index_math import ceil_div, heavy_first_coords, unit_coords


def query_grid(seqlen_q, nheads, nheads_kv, tile_m: int, pack_gqa: bool) -> tuple:
    """(query tiles, heads in the grid) of one batch entry: a tile per ``tile_m`` query rows of each query head,
    or with PackGQA per ``tile_m`` packed (token, head) rows of each KV head. Python ints or DSL integers."""
    if pack_gqa:
        return ceil_div(seqlen_q * (nheads // nheads_kv), tile_m), nheads_kv
    return ceil_div(seqlen_q, tile_m), nheads


@dataclass(frozen=True)
class AttentionCtaMap:
    """``blockIdx = (query tile, head, batch · splits + split)``: CTAs of one head run together and share
    K/V in L2; the splits of one (tile, head, batch) are neighbours in z.

    With ``heavy_first`` (used for causal masks) the query tiles run last-to-first, so the tiles
    with the most KV work start first and the short ones fill the tail of the wave. Given a ``lane_group`` (the
    warp-specialized body's one-pass launches over contiguous K/V) the order is longest-first across groups of
    (batch, head) lanes too (:func:`~cute_attention.core.index_math.heavy_first_coords`): tile by tile within one
    head left each head's long tiles behind the previous head's short ones (5-12% of a causal launch's time in a
    greedy-dispatch model of 132 SMs at d256, 4-6% at d64 / d128).
    """

    heavy_first: bool | None = None  # None: decided by the mask (on for a right bound)
    lane_groups: bool = True  # heavy-first across L2-sized groups of lanes where the kernel offers a group size

    def for_mask(self, mask) -> AttentionCtaMap:
        if self.heavy_first is not None:
            return self
        return AttentionCtaMap(heavy_first=mask.has_right, lane_groups=self.lane_groups)

    @staticmethod
    def grid(num_q_tiles: Int32, num_heads: Int32, batch: Int32, num_splits: Int32 = 1) -> tuple:
        return (num_q_tiles, num_heads, batch * num_splits)

    @cute.jit
    def unit_coords(self, unit: Int32, num_q_tiles: Int32, num_heads: Int32, num_splits: Int32,
                    split_kv: cutlass.Constexpr) -> tuple:
        """(query tile, head, batch, split) of work unit ``unit`` of a persistent launch
        (:func:`~cute_attention.core.index_math.unit_coords`: numbered like the blocks of :meth:`grid`)."""
        q_tile, head, batch, split = unit_coords(unit, num_q_tiles, num_heads, num_splits, split_kv,
                                                 bool(self.heavy_first))
        return q_tile, head, batch, Int32(split)

    @cute.jit
    def tile_coords(self, num_q_tiles: Int32, num_splits: Int32, split_kv: cutlass.Constexpr, lane_group=None) -> tuple:
        """(query tile, head, batch, split) of this CTA; split is 0 unless the kernel splits the KV range.
        ``lane_group``: (batch, head) lanes scheduled side by side, longest tiles first (heavy-first launches without
        splits, with ``lane_groups``; None: within each head)."""
        bx, head, bz = cute.arch.block_idx()
        q_tile = bx
        batch = bz
        if cutlass.const_expr(self.heavy_first and self.lane_groups and lane_group is not None and not split_kv):
            # the per-head order below is this one with groups of one lane, without its divisions
            num_heads = cute.arch.grid_dim()[1]
            q_tile, lane = heavy_first_coords(bx + num_q_tiles * (head + num_heads * bz), num_q_tiles,
                                              num_heads * cute.arch.grid_dim()[2], lane_group)
            head = lane % num_heads
            batch = lane // num_heads
        elif cutlass.const_expr(self.heavy_first):
            q_tile = num_q_tiles - 1 - bx
        split = Int32(0)
        if cutlass.const_expr(split_kv):
            split = bz % num_splits
            batch = bz // num_splits
        return q_tile, head, batch, split

