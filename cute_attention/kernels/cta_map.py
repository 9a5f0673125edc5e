"""CTA maps: grid ↔ (query tile, head, batch, KV split) (TurboMind's ``AttentionCtaMap``), and the ragged one of
varlen launches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.core.index_math import ceil_div


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
    with the most KV work start first and the short ones fill the tail of the wave.
    """

    heavy_first: bool | None = None  # None: decided by the mask (on for a right bound)

    def for_mask(self, mask) -> AttentionCtaMap:
        if self.heavy_first is not None:
            return self
        return AttentionCtaMap(heavy_first=mask.has_right)

    @staticmethod
    def grid(num_q_tiles: Int32, num_heads: Int32, batch: Int32, num_splits: Int32 = 1) -> tuple:
        return (num_q_tiles, num_heads, batch * num_splits)

    @cute.jit
    def tile_coords(self, num_q_tiles: Int32, num_splits: Int32, split_kv: cutlass.Constexpr) -> tuple:
        """(query tile, head, batch, split) of this CTA; split is 0 unless the kernel splits the KV range."""
        bx, head, bz = cute.arch.block_idx()
        q_tile = bx
        if cutlass.const_expr(self.heavy_first):
            q_tile = num_q_tiles - 1 - bx
        batch = bz
        split = Int32(0)
        if cutlass.const_expr(split_kv):
            split = bz % num_splits
            batch = bz // num_splits
        return q_tile, head, batch, split



def ragged_query_grid(total_q, batch, nheads, nheads_kv, tile_m: int, pack_gqa: bool) -> tuple:
    """(query tiles, heads in the grid) of a varlen launch: an upper bound of ``Σ_b ceil(rows_b / tile_m)`` over the
    packed sequences, ``rows_q // tile_m + batch`` (``rows_q``: ``total_q``, or ``total_q · group`` with PackGQA).
    Python ints or DSL integers."""
    group = nheads // nheads_kv if pack_gqa else 1
    return (total_q * group) // tile_m + batch, nheads_kv if pack_gqa else nheads


@dataclass(frozen=True)
class RaggedCtaMap:
    """Varlen: ``blockIdx = (flattened query tile, head, split)`` over the query tiles of every packed sequence, in
    sequence order, so no CTA is spent on the tiles a padded grid would give the short sequences.

    Built on the device from ``cu_seqlens`` (``(batch + 1,)``). Each warp finds its CTA's sequence by itself: 32
    sequences at a time, lane ``i`` counts the tiles of sequence ``base + i``, a warp prefix sum (shuffles) gives
    where each sequence's tiles start, a ballot counts the sequences that end at or before this tile. A CTA past
    the last tile gets the last sequence and a tile past its end (it exits). ``heavy_first`` runs each sequence's
    tiles last-to-first (causal: the longest rows first).
    """

    cu_seqlens: Any
    group: Any  # query rows per token: 1, or the query heads packed into a tile's rows (PackGQA)
    tile_m: int
    heavy_first: bool

    @staticmethod
    def grid(num_q_tiles: Int32, num_heads: Int32, batch: Int32, num_splits: Int32 = 1) -> tuple:
        return (num_q_tiles, num_heads, num_splits)

    @cute.jit
    def tile_coords(self, num_q_tiles: Int32, num_splits: Int32, split_kv: cutlass.Constexpr) -> tuple:
        """(query tile within its sequence, head, sequence, split) of this CTA."""
        t, head, bz = cute.arch.block_idx()
        split = Int32(0)
        if cutlass.const_expr(split_kv):
            split = bz
        batch = self.cu_seqlens.shape[0] - 1
        lane = cute.arch.lane_idx()
        start = Int32(0)  # tiles of the sequences before this chunk of 32
        found_b = batch - 1
        found_tile = t  # past the last sequence's tiles: exits
        found = Int32(0)
        for chunk in cutlass.range((batch + 31) // 32, unroll=1):
            b = chunk * 32 + lane
            rows = Int32(0)
            if b < batch:
                rows = (self.cu_seqlens[b + 1] - self.cu_seqlens[b]) * self.group
            tiles = (rows + (self.tile_m - 1)) // self.tile_m
            ends = tiles  # inclusive prefix sum of the chunk's tile counts
            for shift in cutlass.range_constexpr(5):
                got = cute.arch.shuffle_sync_up(ends, 1 << shift)
                if lane >= (1 << shift):
                    ends = ends + got
            ends = ends + start
            before = cute.arch.popc(cute.arch.vote_ballot_sync(ends <= t))
            if found == 0 and before < 32:
                first = cute.arch.shuffle_sync(ends - tiles, before)
                count = cute.arch.shuffle_sync(tiles, before)
                found_b = chunk * 32 + before
                found_tile = t - first
                if cutlass.const_expr(self.heavy_first):
                    found_tile = count - 1 - found_tile
                found = Int32(1)
            start = cute.arch.shuffle_sync(ends, 31)
        return found_tile, head, found_b, split
