"""Exhaustive CPU checks of the tile schedule against brute-force masks."""

import itertools

import pytest

from cute_attention.core.index_math import (
    ceil_div,
    heavy_first_coords,
    key_visible,
    kv_tile_schedule,
    l2_lane_group,
    paged_box,
    paged_group_offset,
    paged_slot,
    paged_tile_start,
    ring_slot_phase,
    turbomind_mask_iter_back,
    unit_coords,
)


def _tile_classes(q_start, tile_m, tile_n, sq, sk, left, right, has_left, has_right, group=1):
    """For every KV tile: (any visible, right-side cut, left-side cut) over the valid rows
    (with ``group`` > 1 the rows are packed heads: row i is token i // group)."""
    rows = range(q_start, min(q_start + tile_m, sq * group))
    out = []
    for n in range(ceil_div(sk, tile_n) + 1):
        any_vis = False
        right_cut = False  # some (row, col) hidden by the right bound or by seqlen_k
        left_cut = False  # some (row, col) hidden by the left bound alone
        for i in rows:
            p = i // group + sk - sq
            for j in range(n * tile_n, (n + 1) * tile_n):
                vis = key_visible(p, j, sk, left, right, has_left, has_right)
                any_vis |= vis
                if not vis:
                    hidden_right = j >= sk or (has_right and j > p + right)
                    right_cut |= hidden_right
                    left_cut |= not hidden_right
        out.append((any_vis, right_cut, left_cut))
    return out


CASES = list(
    itertools.product(
        [1, 2, 4],  # tile_m
        [1, 2, 3, 4],  # tile_n
        [1, 2, 3, 5, 8],  # seqlen_q
        [1, 2, 3, 5, 9],  # seqlen_k
        [(False, False), (False, True), (True, False), (True, True)],
    )
)


@pytest.mark.parametrize("tile_m,tile_n,sq,sk,flags", CASES)
def test_schedule_matches_brute_force(tile_m, tile_n, sq, sk, flags):
    _check_schedules(tile_m, tile_n, sq, sk, flags, 1)


PACKED_CASES = list(
    itertools.product(
        [2, 3, 4],  # group: query heads per KV head packed into the rows
        [2, 4, 8],  # tile_m
        [1, 2, 3],  # tile_n
        [1, 2, 3, 5],  # seqlen_q
        [1, 3, 5, 9],  # seqlen_k
        [(False, False), (False, True), (True, False), (True, True)],
    )
)


@pytest.mark.parametrize("group,tile_m,tile_n,sq,sk,flags", PACKED_CASES)
def test_packed_schedule_matches_brute_force(group, tile_m, tile_n, sq, sk, flags):
    """PackGQA: a tile's rows are (token, head) pairs, row r = token r // group; the same tightness rules."""
    _check_schedules(tile_m, tile_n, sq, sk, flags, group)


def _check_schedules(tile_m, tile_n, sq, sk, flags, group):
    has_left, has_right = flags
    lefts = range(0, 6) if has_left else [0]
    rights = range(0, 6) if has_right else [0]
    for left, right in itertools.product(lefts, rights):
        for q_start in range(0, sq * group, tile_m):
            s = kv_tile_schedule(q_start, tile_m, tile_n, sq, sk, left, right, has_left, has_right, group)
            classes = _tile_classes(q_start, tile_m, tile_n, sq, sk, left, right, has_left, has_right, group)
            ctx = (q_start, left, right, s)
            assert 0 <= s.n_lo <= s.n_hi, ctx
            assert s.back >= 0 and s.mid >= 0 and s.front >= 0, ctx
            assert s.back + s.mid + s.front == s.n_hi - s.n_lo, ctx
            visible_tiles = [n for n, c in enumerate(classes) if c[0]]
            if visible_tiles:
                # tight range: first and last visited tiles hold visible keys, nothing visible outside
                assert s.n_lo == visible_tiles[0] and s.n_hi == visible_tiles[-1] + 1, ctx
            else:
                assert s.n_hi == s.n_lo, ctx
            walk = list(range(s.n_hi - 1, s.n_lo - 1, -1))
            back, mid, front = walk[: s.back], walk[s.back : s.back + s.mid], walk[s.back + s.mid :]
            for n in mid:
                assert not classes[n][1] and not classes[n][2], (ctx, n, "mid tile needs a mask")
            for n in front:
                assert not classes[n][1], (ctx, n, "front tile cut on the right")
            # the back phase is no longer than it must be: its lowest tile really is cut on the right
            if back:
                assert classes[back[-1]][1], (ctx, "back phase too long")
            if front:
                assert classes[front[0]][2], (ctx, "front phase too long")


@pytest.mark.parametrize("tile_m,tile_n", [(1, 1), (2, 2), (4, 2), (2, 4), (4, 4)])
def test_turbomind_back_count_is_safe_and_at_most_one_more(tile_m, tile_n):
    """TurboMind's causal back-mask count (mask_iter_back) covers ours and exceeds it by at most one tile."""
    for sq, sk in itertools.product(range(1, 10), range(1, 10)):
        if sk % tile_n or sk < sq:
            continue  # TurboMind's formula assumes whole tiles and no empty rows
        for q_start in range(0, sq, tile_m):
            s = kv_tile_schedule(q_start, tile_m, tile_n, sq, sk, 0, 0, False, True)
            offset_q = q_start + sk - sq
            offset_k = (s.n_hi - 1) * tile_n
            tm = min(turbomind_mask_iter_back(offset_q, offset_k, tile_n), s.n_hi - s.n_lo)
            assert s.back <= tm <= s.back + 1


def test_schedule_runs_on_dsl_integers():
    """The same function traces with DSL integers (no Python control flow on runtime values)."""
    import cutlass
    import cutlass.cute as cute

    seen = {}

    @cute.jit
    def trace(sq: cutlass.Int32, sk: cutlass.Int32, left: cutlass.Int32):
        s = kv_tile_schedule(sq - 1, 64, 64, sq, sk, left, 0, True, True)
        seen["types"] = {type(v).__name__ for v in (s.n_lo, s.n_hi, s.back, s.mid, s.front)}

    cute.compile(trace, cutlass.Int32(5), cutlass.Int32(7), cutlass.Int32(3))
    assert seen["types"] and all("Int" in t for t in seen["types"])


def test_packed_schedule_runs_on_dsl_integers():
    """PackGQA's form (a runtime group) traces with DSL integers too."""
    import cutlass
    import cutlass.cute as cute

    seen = {}

    @cute.jit
    def trace(sq: cutlass.Int32, sk: cutlass.Int32, group: cutlass.Int32):
        s = kv_tile_schedule(16, 16, 64, sq, sk, sk - 100, 0, True, True, group)
        seen["types"] = {type(v).__name__ for v in (s.n_lo, s.n_hi, s.back, s.mid, s.front)}

    cute.compile(trace, cutlass.Int32(5), cutlass.Int32(700), cutlass.Int32(4))
    assert seen["types"] and all("Int" in t for t in seen["types"])


@pytest.mark.parametrize("tile_n", [64, 128])
@pytest.mark.parametrize("block_size", [16, 32, 64, 128, 256])
def test_paged_boxes_cover_each_tile_row_by_row(tile_n, block_size):
    """Every row of every KV tile, moved as TMA boxes of min(block, tile) rows, lands where the row-by-row rule
    (``paged_slot``) puts it: box j of tile n is block-table entry e, box b of that block, and its row i is
    physical row b * box_rows + i of block table[e]."""
    box_rows = min(block_size, tile_n)
    table = list(range(97, 97 - 12, -1))  # a permuted-looking block table, 12 blocks
    for n in range(len(table) * block_size // tile_n):
        for j in range(tile_n // box_rows):
            entry, box = paged_box(n * tile_n + j * box_rows, box_rows, block_size)
            assert 0 <= box < max(1, block_size // box_rows)
            for i in range(box_rows):
                token = n * tile_n + j * box_rows + i
                assert (table[entry], box * box_rows + i) == paged_slot(table, token, block_size)


@pytest.mark.parametrize("tile_n", [64, 128])
@pytest.mark.parametrize("block_size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("group_rows", [4, 8, 16])
def test_paged_row_groups_locate_each_tile_row(tile_n, block_size, group_rows):
    """The cp.async producer's split of a row's place (tile start + row-group offset + the thread's row in its
    group) lands every row of every tile where the row-by-row rule (``paged_slot``) puts it."""
    table = list(range(97, 97 - 12, -1))
    for n in range(len(table) * block_size // tile_n):
        entry0, row_base = paged_tile_start(n, tile_n, block_size)
        for group_start in range(0, tile_n, group_rows):
            entries, rows = paged_group_offset(group_start, tile_n, block_size)
            for r in range(group_rows):
                token = n * tile_n + group_start + r
                assert (table[entry0 + entries], row_base + rows + r) == paged_slot(table, token, block_size)


@pytest.mark.parametrize("split_kv", [False, True])
@pytest.mark.parametrize("heavy_first", [False, True])
def test_persistent_units_cover_every_block_once(split_kv, heavy_first):
    """A persistent launch's units map one to one onto the one-unit grid's (query tile, head, batch, split), in the
    grid's block order (query tile fastest, reversed with heavy_first)."""
    for q_tiles, heads, batch, splits in itertools.product((1, 3, 16), (1, 5), (1, 2, 3), (1, 4) if split_kv else (1,)):
        seen = []
        for unit in range(q_tiles * heads * batch * splits):
            q, h, b, s = unit_coords(unit, q_tiles, heads, splits, split_kv, heavy_first)
            bx, by, bz = unit % q_tiles, (unit // q_tiles) % heads, unit // (q_tiles * heads)
            assert q == (q_tiles - 1 - bx if heavy_first else bx) and h == by
            assert (b, s) == ((bz // splits, bz % splits) if split_kv else (bz, 0))
            seen.append((q, h, b, s))
        assert len(set(seen)) == len(seen) == q_tiles * heads * batch * splits


@pytest.mark.parametrize("stages", [1, 2, 3, 4, 5, 8])
def test_ring_slot_phase_matches_div_mod(stages):
    """Every step of a ring: slot t mod stages, phase (t div stages) mod 2, whichever form the depth takes."""
    for t in range(0, 64 * stages + 7):
        assert ring_slot_phase(t, stages) == (t % stages, (t // stages) % 2)


@pytest.mark.parametrize("group", [1, 2, 3, 5, 8])
def test_heavy_first_coords_is_a_bijection_longest_first(group):
    """Every (tile, lane) exactly once; inside a group tiles never get lighter-then-heavier; a group's lanes run side
    by side (consecutive blocks of a group differ in lane before they differ in tile)."""
    for num_q_tiles in (1, 2, 7, 16):
        for lanes in (1, 2, 3, 8, 13):
            seen = [heavy_first_coords(b, num_q_tiles, lanes, group) for b in range(num_q_tiles * lanes)]
            assert sorted(seen) == [(t, lane) for t in range(num_q_tiles) for lane in range(lanes)]
            for b in range(1, len(seen)):
                (t0, l0), (t1, l1) = seen[b - 1], seen[b]
                if l0 // group == l1 // group:
                    assert t1 <= t0
            assert seen[0] == (num_q_tiles - 1, 0)
            assert [lane for _, lane in seen[:min(group, lanes)]] == list(range(min(group, lanes)))


def test_l2_lane_group_fits_kv_in_the_budget():
    for d in (64, 96, 128, 192, 256):
        for sk in (1, 100, 1024, 4096, 8192, 16384, 131072, 1 << 20):
            g = l2_lane_group(sk, d)
            assert 1 <= g <= 8
            assert g == 1 or g * (2 * sk * d * 2) <= 32 * 1024 * 1024
            assert g == 8 or (g + 1) * max(sk * d // 256, 1) > 32 * 1024
    assert l2_lane_group(8192, 256) == 4 and l2_lane_group(8192, 128) == 8 and l2_lane_group(16384, 256) == 2
