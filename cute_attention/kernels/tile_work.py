"""One CTA's work: which query tile of which (batch, head) it serves, the sequence lengths it sees, and the KV tiles
it walks (TurboMind's CtaMap + the mask iteration counts; FlashAttention's SeqlenInfo / BlockInfo).

Shared by every attention kernel body: the cp.async / synchronous body of :mod:`cute_attention.kernels.attention`
and a warp-specialized one locate their work the same way, so masks, splits and PackGQA rows mean the same thing
in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute

from cute_attention.core.index_math import TileSchedule, kv_tile_schedule, l2_lane_group, split_schedule
from cute_attention.kv.pack_gqa import PackedRows
from cute_attention.kv.ragged import ragged_views


@dataclass(frozen=True)
class TileWork:
    """What one CTA computes (DSL integers on the device)."""

    q_tile: Any
    head: Any  # query head, or with PackGQA the KV head whose group the tile packs
    batch: Any
    split: Any  # KV split (0 without split-K)
    kv_head: Any
    q_start: Any  # first tile row (a packed row with PackGQA)
    seqlen_q: Any
    seqlen_k: Any  # this sequence's keys (clamped to the cache's capacity when lengths come from a tensor)
    rows_q: Any  # rows of the query tiles: seqlen_q, or seqlen_q * group with PackGQA
    group: Any  # 1, or the query heads packed into a tile's rows
    q_rows: PackedRows | None  # PackGQA: the row sources of Q and O (None: a tile of one head)
    o_rows: PackedRows | None
    sched: TileSchedule  # the KV tiles this CTA walks, in three phases
    # the tensors as this CTA indexes them ([batch, row, head, ...]): the arguments, or with varlen views rebased
    # onto this sequence's rows (:mod:`cute_attention.kv.ragged`)
    mQ: Any
    mK: Any
    mV: Any
    mO: Any
    mLSE: Any
    # varlen: the packed rows where this sequence's queries and keys start (0 otherwise), for copies that index the
    # unrebased tensors (TMA descriptors are made on the host from the whole packed tensor)
    q_offset: Any = 0
    k_offset: Any = 0


@cute.jit
def locate_work(cta_map, kv_cache, args, num_q_tiles, num_splits, tile_m: cutlass.Constexpr,
                tile_n: cutlass.Constexpr, head_dim: cutlass.Constexpr, mask: cutlass.Constexpr,
                pack_gqa: cutlass.Constexpr, split_kv: cutlass.Constexpr, varlen: cutlass.Constexpr,
                coords=None, lane_groups: cutlass.Constexpr = False) -> TileWork:
    """This CTA's :class:`TileWork` from the kernel's :class:`~cute_attention.kernels.attention.AttentionArgs`
    (``args.mO`` is the output; with ``split_kv`` the fp32 partials, never packed; with ``varlen`` sequences are
    packed along one token axis and delimited by ``args.mCuSeqlensQ`` / ``mCuSeqlensK``; ``coords``: a persistent
    CTA's (query tile, head, batch, split) of its current unit, else the CTA map's of this block; ``lane_groups``: offer
    the CTA map an L2-sized group of lanes for its heavy-first order, the warp-specialized body's choice: in the
    register-bound mma.sync tiles the extra index math spilled, e.g. 14 LDL/STL in ``simt_m8n64_w1x4_s3_pack``)."""
    mQ, mK, mV, mO, mLSE = args.mQ, args.mK, args.mV, args.mO, args.mLSE
    if cutlass.const_expr(coords is None):
        lane_group = None  # contiguous K/V of one length: the launch's lanes ordered longest-first by L2-sized groups
        if cutlass.const_expr(lane_groups and not varlen and not kv_cache.seqlens):
            lane_group = l2_lane_group(mK.shape[1], head_dim)
        q_tile, head, batch, split = cta_map.tile_coords(num_q_tiles, num_splits, split_kv, lane_group)
    else:
        q_tile, head, batch, split = coords
    seqlen_q = mQ.shape[1]
    seqlen_k = mK.shape[1]
    q_offset = k_offset = 0
    if cutlass.const_expr(varlen):
        views = ragged_views(mQ, mK, mV, mO, mLSE, args.mCuSeqlensQ, args.mCuSeqlensK, batch, split_kv)
        mQ, mK, mV, mO, mLSE = views.mQ, views.mK, views.mV, views.mO, views.mLSE
        seqlen_q, seqlen_k = views.seqlen_q, views.seqlen_k
        q_offset, k_offset = views.q_offset, views.k_offset
    if cutlass.const_expr(kv_cache.seqlens):
        # lengths come from the device unchecked: clamp to the cache's capacity so no read leaves it
        seqlen_k = cutlass.max(cutlass.min(args.mSeqlensK[batch], kv_cache.capacity(mK, args.mPageTable)), 0)
    kv_head = head  # PackGQA: the grid runs over KV heads
    if cutlass.const_expr(not pack_gqa):
        kv_head = head // (mQ.shape[2] // mK.shape[2])
    q_start = q_tile * tile_m
    rows_q = seqlen_q  # rows of the query tiles
    group = 1
    q_rows = o_rows = None  # PackGQA: the row sources of Q and O
    if cutlass.const_expr(pack_gqa):
        group = mQ.shape[2] // mK.shape[2]
        rows_q = seqlen_q * group
        q_rows = PackedRows(mQ[batch, None, None, None], q_start, group, head * group, tile_m, head_dim)
        if cutlass.const_expr(not split_kv):
            o_rows = PackedRows(mO[batch, None, None, None], q_start, group, head * group, tile_m, head_dim)
    sched = kv_tile_schedule(q_start, tile_m, tile_n, seqlen_q, seqlen_k, args.window_left, args.window_right,
                             mask.has_left, mask.has_right, group)
    if cutlass.const_expr(split_kv):
        sched = split_schedule(sched, split, num_splits)
    return TileWork(q_tile=q_tile, head=head, batch=batch, split=split, kv_head=kv_head, q_start=q_start,
                    seqlen_q=seqlen_q, seqlen_k=seqlen_k, rows_q=rows_q, group=group, q_rows=q_rows, o_rows=o_rows,
                    sched=sched, mQ=mQ, mK=mK, mV=mV, mO=mO, mLSE=mLSE, q_offset=q_offset, k_offset=k_offset)
