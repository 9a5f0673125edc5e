"""CPU: split-K index math (split ranges and their phases), paged slots, and the split-count cost model."""

import itertools
import math

import pytest
from test_index_math import _tile_classes

from cute_attention.core.index_math import (
    ceil_div,
    kv_tile_schedule,
    num_splits_heuristic,
    paged_slot,
    split_schedule,
)

CASES = list(itertools.product([1, 4], [1, 3], [1, 5, 8], [1, 5, 9, 17],
                               [(False, False), (False, True), (True, False), (True, True)]))


@pytest.mark.parametrize("tile_m,tile_n,sq,sk,flags", CASES)
def test_splits_partition_the_schedule_and_keep_phases(tile_m, tile_n, sq, sk, flags):
    has_left, has_right = flags
    for left, right in itertools.product(range(0, 5) if has_left else [0], range(0, 5) if has_right else [0]):
        for q_start in range(0, sq, tile_m):
            s = kv_tile_schedule(q_start, tile_m, tile_n, sq, sk, left, right, has_left, has_right)
            classes = _tile_classes(q_start, tile_m, tile_n, sq, sk, left, right, has_left, has_right)
            total = s.n_hi - s.n_lo
            for num_splits in range(1, 7):
                covered = []
                for split in range(num_splits):
                    p = split_schedule(s, split, num_splits)
                    ctx = (q_start, left, right, s, num_splits, split, p)
                    assert s.n_lo <= p.n_lo <= p.n_hi <= s.n_hi, ctx
                    assert min(p.back, p.mid, p.front) >= 0 and p.back + p.mid + p.front == p.n_hi - p.n_lo, ctx
                    assert p.n_hi - p.n_lo <= ceil_div(total, num_splits), ctx
                    covered += range(p.n_lo, p.n_hi)
                    walk = list(range(p.n_hi - 1, p.n_lo - 1, -1))
                    for n in walk[p.back : p.back + p.mid]:
                        assert not classes[n][1] and not classes[n][2], (ctx, n, "mid tile needs a mask")
                    for n in walk[p.back + p.mid :]:
                        assert not classes[n][1], (ctx, n, "front tile cut on the right")
                    # the split's phases are the whole schedule's phases restricted to the split
                    whole = list(range(s.n_hi - 1, s.n_lo - 1, -1))
                    back_set = set(whole[: s.back])
                    assert set(walk[: p.back]) == back_set & set(walk), ctx
                assert covered == list(range(s.n_lo, s.n_hi)), (q_start, num_splits, covered)


def test_one_split_is_the_whole_schedule():
    s = kv_tile_schedule(64, 128, 64, 1000, 3000, 300, 0, True, True)
    assert split_schedule(s, 0, 1) == s


def test_paged_slot():
    table = [7, 3, 11, 0]
    for block_size in (16, 32, 64):
        for token in range(4 * block_size):
            block, row = paged_slot(table, token, block_size)
            assert block == table[token // block_size] and row == token % block_size
            assert block * block_size + row == table[token // block_size] * block_size + token % block_size


def brute_splits(ctas, sms, occ, max_splits, cap):
    best = None
    for s in range(1, max_splits + 1):
        waves = math.ceil(ctas * s / (sms * occ))
        if s > 1 and waves > cap:
            break
        cost = (1 / s + 1e-3) * waves
        if best is None or cost < best[0]:
            best = (cost, s)
    return best[1]


@pytest.mark.parametrize("sms,occ", [(132, 1), (132, 2), (108, 3), (8, 1)])
def test_split_heuristic_matches_cost_model(sms, occ):
    for ctas in [1, 2, 7, 32, 64, 131, 132, 133, 264, 500, 4096]:
        for max_splits in [1, 2, 8, 32, 128]:
            for cap in (4, 8):
                got = num_splits_heuristic(ctas, sms, occ, max_splits, cap)
                assert got == brute_splits(ctas, sms, occ, max_splits, cap)
                assert 1 <= got <= max_splits


def test_split_heuristic_shapes():
    # 8 CTAs on 132 SMs: 16 splits fill one wave (cost 0.0635), 33 fill two (0.0626), 64 need four (0.0665)
    assert num_splits_heuristic(8, 132, 1, 64, 4) == 33
    assert num_splits_heuristic(8, 132, 1, 16, 4) == 16
    # a full grid already: no split
    assert num_splits_heuristic(132 * 4, 132, 1, 64, 4) == 1
    with pytest.raises(ValueError, match="ctas"):
        num_splits_heuristic(0, 132, 1, 8, 4)


def test_ctas_per_sm_takes_the_tightest_limit():
    from cute_attention.host.compile_cache import CompiledKernel
    from cute_attention.host.launcher import ctas_per_sm

    def kernel(threads, smem, regs):
        k = CompiledKernel(key=None, fn=None, smem_bytes=smem, threads=threads, compile_seconds=0.0)
        k.__dict__["registers"] = regs  # as read from a cubin
        return k

    h100 = dict(regs_per_sm=65536, threads_per_sm=2048, smem_per_sm=228 * 1024)
    assert ctas_per_sm(kernel(128, 40 * 1024, 255), **h100) == 2  # registers: 8 warps x 8192
    assert ctas_per_sm(kernel(128, 40 * 1024, 64), **h100) == 5  # shared memory: 228 KiB / 41 KiB
    assert ctas_per_sm(kernel(256, 1024, 32), **h100) == 8  # threads
    assert ctas_per_sm(kernel(128, 200 * 1024, 32), **h100) == 1
    assert CompiledKernel(None, None, 0, 32, 0.0).registers == 255  # no cubin: assume the worst


def test_decode_split_choices_with_two_ctas_per_sm():
    """The decode cap (2 CTAs per SM) on an H100's 132 SMs picks the split counts the sweep measured best
    (benchmarks/results/h100/sweep_decode.json): 16-32 CTAs-worth per KV head at batch 1-2, 8 at batch 4, none
    once the unsplit grid fills the GPU."""
    from cute_attention.host.launcher import DECODE_CTAS_PER_SM, DECODE_WAVE_CAP

    def pick(ctas, kv_tiles):
        return num_splits_heuristic(ctas, 132, DECODE_CTAS_PER_SM, min(128, kv_tiles), DECODE_WAVE_CAP)

    assert pick(8, 2048) == 33  # b1 ctx128k, 8 KV heads (packed GQA): 264 CTAs, one wave at 2 per SM
    assert pick(16, 1024) == 16  # b2 ctx64k
    assert pick(32, 512) == 8  # b4 ctx32k
    assert pick(512, 64) == 1  # b64 ctx4k: 512 CTAs already fill two waves
    assert pick(8, 4) == 4  # never more splits than KV tiles


def test_query_grid_and_cache_capacity_on_host_ints():
    """The grid rule the kernel launches with, evaluated on host ints for the split choice; the KV cache layouts'
    capacity rule (the one the kernels clamp lengths with) on torch tensors."""
    import torch

    from cute_attention.kernels.cta_map import query_grid
    from cute_attention.kv import LinearKVCache, PagedKVCache

    assert query_grid(1, 32, 8, 16, True) == (1, 8)  # decode: 4 heads x 1 token per KV head, one tile
    assert query_grid(5, 32, 8, 16, True) == (2, 8)  # 20 packed rows
    assert query_grid(5, 32, 8, 16, False) == (1, 32)
    assert query_grid(239, 8, 8, 128, False) == (2, 8)
    assert LinearKVCache.capacity(torch.empty(2, 1100, 2, 8)) == 1100
    assert PagedKVCache(16).capacity(torch.empty(9, 16, 2, 8), torch.zeros(2, 3, dtype=torch.int32)) == 48


def test_warp_specialized_prefill_splits_fill_one_wave():
    """The sm90 kernels (one CTA per SM) split a prefill grid into one wave at most: b1 h32 sq128 sk128k d128 on 132
    SMs takes 4 splits (128 CTAs), the count measured fastest (benchmarks/results/h200/splitk_counts_8c2f92a.txt);
    the Sm80 kernels keep TurboMind's 8-wave cap."""
    from cute_attention.host import registry as R
    from cute_attention.host.launcher import PREFILL_WAVE_CAP, prefill_wave_cap

    ws = prefill_wave_cap(R.SM90_M128N128)
    assert ws == 1 and prefill_wave_cap(R.SM80_M128N64_S4L) == PREFILL_WAVE_CAP
    assert num_splits_heuristic(32, 132, 1, 1024, ws) == 4
    assert num_splits_heuristic(32, 132, 1, 1024, PREFILL_WAVE_CAP) == 33  # what the 8-wave cap would pick
    assert num_splits_heuristic(132, 132, 1, 1024, ws) == 1  # a full wave already
