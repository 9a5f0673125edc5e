"""Index math of the attention mainloop: which KV tiles a query tile visits, and how many need a mask.

Every function here takes plain Python ints *or* DSL integers (``cutlass.Int32``) and uses only
``+ - * //`` and :func:`imin` / :func:`imax`, so the same code runs on the host (tests, launcher)
and inside ``@cute.jit`` code. Divisions only ever see non-negative numerators, so Python's floor
division and the device's truncating division agree.

Positions follow FlashAttention's bottom-right alignment: query row ``i`` sits at absolute
position ``p(i) = i + seqlen_k - seqlen_q`` and sees key ``j`` iff ``j < seqlen_k`` and
``p(i) - left <= j <= p(i) + right`` (an absent bound is unbounded). Causal is ``right = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Int = Any  # a Python int or a DSL integer


def imax(a: Int, b: Int) -> Int:
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    import cutlass

    return cutlass.max(a, b)


def imin(a: Int, b: Int) -> Int:
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    import cutlass

    return cutlass.min(a, b)


def ceil_div(a: Int, b: int) -> Int:
    """``ceil(a / b)`` for ``a >= 0``."""
    return (a + (b - 1)) // b


def clamp(x: Int, lo: Int, hi: Int) -> Int:
    return imin(imax(x, lo), hi)


@dataclass(frozen=True)
class TileSchedule:
    """The KV tiles ``[n_lo, n_hi)`` one query tile visits, walked from ``n_hi - 1`` down.

    Phases, in walking order: ``back`` tiles that need the right-bound / ``seqlen_k`` mask (the
    causal diagonal and the residue), ``mid`` unmasked tiles, ``front`` tiles that need only the
    left (sliding-window) mask. ``back + mid + front == n_hi - n_lo``.
    """

    n_lo: Int
    n_hi: Int
    back: Int
    mid: Int
    front: Int


def query_positions(q_start: Int, tile_m: int, seqlen_q: Int, seqlen_k: Int, group: Int = 1) -> tuple[Int, Int]:
    """Absolute positions of the first and the last valid row of the query tile at ``q_start``.

    With ``group > 1`` the tile's rows are packed query heads (PackGQA): row ``r`` is token ``r // group``
    of head ``r % group`` of the KV head's group, so the tile spans ``seqlen_q * group`` rows.
    """
    shift = seqlen_k - seqlen_q
    if isinstance(group, int) and group == 1:
        last_row = imin(q_start + tile_m, seqlen_q) - 1
        return q_start + shift, last_row + shift
    last_row = imin(q_start + tile_m, seqlen_q * group) - 1
    return q_start // group + shift, last_row // group + shift


def kv_tile_schedule(
    q_start: Int,
    tile_m: int,
    tile_n: int,
    seqlen_q: Int,
    seqlen_k: Int,
    window_left: Int = 0,
    window_right: Int = 0,
    has_left: bool = False,
    has_right: bool = False,
    group: Int = 1,
) -> TileSchedule:
    """Tile range and phase lengths for the query tile whose first row is ``q_start``.

    ``has_left`` / ``has_right`` are compile-time choices; the window sizes are runtime values.
    Tight: ``n_lo`` / ``n_hi`` skip every tile no valid row sees, ``mid`` holds every tile that
    all valid rows see in full, and a ``front`` tile is never cut by the right bound. ``group``: rows
    are packed query heads (see :func:`query_positions`).
    """
    p_first, p_last = query_positions(q_start, tile_m, seqlen_q, seqlen_k, group)
    kv_hi = seqlen_k
    right_ok = seqlen_k  # keys below this are seen by every row, as far as the right bound goes
    if has_right:
        kv_hi = imin(kv_hi, imax(p_last + window_right + 1, 0))
        right_ok = imin(right_ok, imax(p_first + window_right + 1, 0))
    n_hi = ceil_div(kv_hi, tile_n)
    n_lo = 0
    left_ok = 0  # keys at or above this are seen by every row, as far as the left bound goes
    if has_left:
        n_lo = imin(imax(p_first - window_left, 0) // tile_n, n_hi)
        left_ok = imax(p_last - window_left, 0)
    total = n_hi - n_lo
    back = clamp(n_hi - imax(right_ok // tile_n, n_lo), 0, total)
    front = 0
    if has_left:
        front = clamp(ceil_div(left_ok, tile_n) - n_lo, 0, total - back)
    return TileSchedule(n_lo=n_lo, n_hi=n_hi, back=back, mid=total - back - front, front=front)


def turbomind_mask_iter_back(offset_q: int, offset_k: int, tile_n: int) -> int:
    """TurboMind's count of causally masked tiles at the back (``mask_iter_back``): conservative by at most one."""
    return ceil_div(max(0, offset_k - offset_q + tile_n), tile_n)


def key_visible(row_pos: int, col: int, seqlen_k: int, window_left: int, window_right: int,
                has_left: bool, has_right: bool) -> bool:
    """Brute-force visibility of key ``col`` to the query at absolute position ``row_pos`` (host only)."""
    if col >= seqlen_k or col < 0:
        return False
    if has_right and col > row_pos + window_right:
        return False
    if has_left and col < row_pos - window_left:
        return False
    return True


def split_schedule(sched: TileSchedule, split: Int, num_splits: Int) -> TileSchedule:
    """The part of ``sched`` that split ``split`` of ``num_splits`` walks (split-K over KV tiles).

    The tiles ``[n_lo, n_hi)`` are cut into ``num_splits`` contiguous chunks of ``ceil(total / num_splits)``
    tiles, split 0 lowest; trailing splits may be empty (``n_lo == n_hi``). The phases keep their meaning:
    the chunk's ``back`` tiles are those of ``sched.back`` inside it, likewise ``front``.
    """
    total = sched.n_hi - sched.n_lo
    chunk = ceil_div(total, num_splits)
    lo = imin(sched.n_lo + split * chunk, sched.n_hi)
    hi = imin(lo + chunk, sched.n_hi)
    back = imax(hi - imax(lo, sched.n_hi - sched.back), 0)
    front = imax(imin(hi, sched.n_lo + sched.front) - lo, 0)
    return TileSchedule(n_lo=lo, n_hi=hi, back=back, mid=hi - lo - back - front, front=front)


def paged_slot(block_table_row: Any, token: Int, block_size: int) -> tuple[Any, Int]:
    """(physical block, row inside it) of logical KV position ``token`` of one sequence's block table."""
    return block_table_row[token // block_size], token % block_size


def paged_box(row: Int, box_rows: int, block_size: int) -> tuple[Int, Int]:
    """(block-table index, box inside that block) of the ``box_rows``-row box that starts at logical KV row ``row``:
    TMA copies of a paged cache move boxes of ``min(block_size, tile_n)`` rows, one per tile when a block holds
    whole tiles, else ``tile_n // block_size`` per tile (``row`` a multiple of ``box_rows``)."""
    return row // block_size, (row % block_size) // box_rows


def paged_tile_start(n: Int, tile_n: int, block_size: int) -> tuple[Int, Int]:
    """(block-table index, row in that block) where KV tile ``n >= 0`` starts, tiles and blocks dividing one another:
    a tile spans ``tile_n // block_size`` consecutive entries, or a block holds ``block_size // tile_n`` tiles."""
    if block_size <= tile_n:
        return n * (tile_n // block_size), 0
    per_block = block_size // tile_n
    return n // per_block, (n % per_block) * tile_n


def paged_group_offset(row: int, tile_n: int, block_size: int) -> tuple[int, int]:
    """(block-table entries, rows) past :func:`paged_tile_start` of tile row ``row`` (compile time): with
    ``rows`` + ``r`` for the ``r``-th row of a row group that starts at ``row`` and lies in one block (its height
    divides ``block_size``), logical row ``n·tile_n + row + r`` sits at entry ``start + entries``, row
    ``start_row + rows + r``."""
    if block_size <= tile_n:
        return row // block_size, row % block_size
    return 0, row


def ring_slot_phase(t: Int, stages: int) -> tuple[Int, Int]:
    """(slot, phase bit) of step ``t >= 0`` of a ``stages``-deep ring of mbarrier-guarded buffers: slot
    ``t mod stages``, phase ``(t div stages) mod 2``. A power-of-two depth takes a mask and a shift (on the device,
    signed ``%`` and ``//`` of a DSL integer need sign fix-ups every step)."""
    if stages & (stages - 1) == 0:
        shift = stages.bit_length() - 1
        return t & (stages - 1), (t >> shift) & 1
    return t % stages, (t // stages) % 2


def unit_coords(unit: Int, num_q_tiles: Int, num_heads: Int, num_splits: Int, split_kv: bool,
                heavy_first: bool) -> tuple[Int, Int, Int, Int]:
    """(query tile, head, batch, split) of work unit ``unit`` of a persistent launch, numbered like the blocks of a
    one-unit launch ``(query tile, head, batch · splits)``: query tile fastest (last to first with ``heavy_first``),
    then head, then batch · splits. Python ints or DSL integers (``split_kv`` and ``heavy_first`` are Python)."""
    bx = unit % num_q_tiles
    rest = unit // num_q_tiles
    q_tile = num_q_tiles - 1 - bx if heavy_first else bx
    head = rest % num_heads
    bz = rest // num_heads
    if split_kv:
        return q_tile, head, bz // num_splits, bz % num_splits
    return q_tile, head, bz, 0


# K and V bytes of the (batch, head) lanes a heavy-first launch runs side by side: about two thirds of the 50 MB L2
# of the H100 / H200, so the lanes' K/V stay resident while their query tiles stream through
L2_LANE_BUDGET_KB = 32 * 1024
MAX_LANES_SIDE_BY_SIDE = 8


def l2_lane_group(seqlen_k: Int, head_dim: int) -> Int:
    """How many (batch, head) lanes :func:`heavy_first_coords` runs side by side: as many whose K and V (2 tensors of
    ``seqlen_k × head_dim`` 16-bit values each) fit :data:`L2_LANE_BUDGET_KB`, between 1 and
    :data:`MAX_LANES_SIDE_BY_SIDE` (KB units keep a DSL Int32 far from overflow)."""
    kv_kb = imax(seqlen_k * head_dim // 256, 1)
    return imax(imin(L2_LANE_BUDGET_KB // kv_kb, MAX_LANES_SIDE_BY_SIDE), 1)


def heavy_first_coords(block: Int, num_q_tiles: Int, lanes: Int, group: Int) -> tuple[Int, Int]:
    """(query tile, lane) of linear block ``block`` in ``[0, num_q_tiles · lanes)`` for a causal launch, scheduled
    longest-first: the lanes (batch · heads) in groups of ``group``; inside a group every lane's last query tile
    (the most KV tiles under a causal mask), then every lane's second-to-last, ... So the longest CTAs of a group
    start first and the short ones fill the tail, across heads and not only within one, while a group's K/V stays in
    L2 (:func:`l2_lane_group`). A bijection for any ``group >= 1``; Python ints or DSL integers."""
    per_group = num_q_tiles * group
    g = block // per_group
    r = block - g * per_group
    size = imin(group, lanes - g * group)  # the last group may be short
    return num_q_tiles - 1 - r // size, g * group + r % size


def num_splits_heuristic(ctas: int, sms: int, ctas_per_sm: int, max_splits: int, wave_cap: int) -> int:
    """TurboMind's split count: the cheapest ``s`` in ``1..max_splits`` by
    ``cost = (1/s + 1e-3) · ceil(ctas·s / (sms·ctas_per_sm))``, stopping once the waves pass ``wave_cap``.

    ``ctas`` is the grid without splitting; ``max_splits`` should already be capped by the tile count.
    """
    if ctas < 1 or sms < 1 or ctas_per_sm < 1:
        raise ValueError(f"ctas, sms and ctas_per_sm must be >= 1, got {ctas}, {sms}, {ctas_per_sm}")
    slots = sms * ctas_per_sm
    best, best_cost = 1, None
    for s in range(1, max(1, max_splits) + 1):
        waves = ceil_div(ctas * s, slots)
        if s > 1 and waves > wave_cap:
            break
        cost = (1.0 / s + 1e-3) * waves
        if best_cost is None or cost < best_cost:
            best, best_cost = s, cost
    return best
