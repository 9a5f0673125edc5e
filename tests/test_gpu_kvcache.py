"""GPU: attention over a KV cache, paged or contiguous (``attention_with_kvcache``), against a reference that
gathers each sequence's pages; appends change only their own slots (skipped without a GPU).

Randomly permuted block tables, every block size, per-sequence lengths including 1 and block
boundaries ± 1, GQA 1/4/8/16, decode (1–8 query tokens) and longer queries, split counts 1, 3 and the
heuristic, both dtypes.
"""

import pytest
import torch
from test_gpu_attention import rand, skip_unless_runnable

from cute_attention import attention_with_kvcache
from cute_attention.kv import PAGED_BLOCK_SIZES
from cute_attention.tools.reference import attention_ref, tolerance_check

pytestmark = pytest.mark.gpu


def make_paged(lengths, block_size, nheads_kv, d, dtype, extra_blocks=3):
    """A paged cache holding random K/V for each sequence in randomly permuted blocks (+ spare blocks)."""
    batch = len(lengths)
    max_blocks = max(-(-n // block_size) for n in lengths) + 1
    num_blocks = batch * max_blocks + extra_blocks
    k_cache = rand(num_blocks, block_size, nheads_kv, d, dtype=dtype)
    v_cache = rand(num_blocks, block_size, nheads_kv, d, dtype=dtype)
    perm = torch.randperm(num_blocks, device="cuda", dtype=torch.int32)
    table = perm[: batch * max_blocks].reshape(batch, max_blocks).contiguous()
    return k_cache, v_cache, table


def gather(cache, table, length):
    """(1, length, nheads_kv, d) contiguous rows of one sequence of a paged cache."""
    bs = cache.shape[1]
    rows = torch.arange(length, device="cuda")
    return cache[table[rows // bs].long(), rows % bs].unsqueeze(0)


def check_rows(out, lse, q, ks, vs, causal, window):
    for b in range(q.shape[0]):
        ok, err, bound = tolerance_check(out[b : b + 1], q[b : b + 1], ks[b], vs[b], causal=causal,
                                         window_size=window)
        assert ok, f"batch {b} (len {ks[b].shape[1]}): max error {err:.3e} > bound {bound:.3e}"
        if lse is not None:
            _, ref_lse = attention_ref(q[b : b + 1], ks[b], vs[b], causal=causal, window_size=window)
            torch.testing.assert_close(lse[b : b + 1], ref_lse, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("block_size", PAGED_BLOCK_SIZES, ids=[f"bs{b}" for b in PAGED_BLOCK_SIZES])
@pytest.mark.parametrize("sq", [1, 4, 37], ids=["sq1", "sq4", "sq37"])
def test_paged_matches_gathered_reference(block_size, sq):
    d, dtype = 128, torch.bfloat16
    bs = block_size
    lengths = [1, bs - 1, bs, bs + 1, 3 * bs + 5, 700]
    for nheads, nheads_kv in [(8, 8), (16, 4), (32, 4)]:
        k_cache, v_cache, table = make_paged(lengths, bs, nheads_kv, d, dtype)
        seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
        q = rand(len(lengths), sq, nheads, d, dtype=dtype)
        ks = [gather(k_cache, table[b], n) for b, n in enumerate(lengths)]
        vs = [gather(v_cache, table[b], n) for b, n in enumerate(lengths)]
        for splits in (1, 3, 0):
            for causal, window in [(True, (-1, -1)), (False, (-1, -1)), (False, (50, 0))]:
                out = torch.full_like(q, float("nan"))
                got, lse = attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, causal=causal,
                                                  window_size=window, num_splits=splits, return_lse=True, out=out)
                assert got.data_ptr() == out.data_ptr() and not torch.isnan(got).any()
                try:
                    check_rows(got, lse, q, ks, vs, causal, window)
                except AssertionError as e:
                    raise AssertionError(f"bs={bs} sq={sq} h={nheads}/{nheads_kv} splits={splits} "
                                         f"causal={causal} w={window}: {e}") from None


def poison_unheld_rows(k_cache, v_cache, table, lengths):
    """NaN in every cache row no sequence holds (rows past a length, blocks no table row names): a kernel that lets
    one into a result (P = 0 does not cancel NaN in P·V) fails the comparison."""
    held = torch.zeros(k_cache.shape[:2], dtype=torch.bool, device="cuda")
    for b, n in enumerate(lengths):
        t = torch.arange(n, device="cuda")
        if table is None:
            held[b, t] = True
        else:
            bs = k_cache.shape[1]
            held[table[b, t // bs].long(), t % bs] = True
    k_cache[~held] = float("nan")
    v_cache[~held] = float("nan")


@pytest.mark.parametrize("config", ["sm80", "sm90"])
@pytest.mark.parametrize("d", [64, 128, 256])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_cache_config_matches_reference_and_ignores_unheld_rows(config, d, dtype):
    """Each config over paged caches (blocks smaller than, equal to and larger than its KV tile) and a contiguous
    cache with lengths: decode and prefill rows, GQA, lengths at block boundaries ± 1, split counts 1 / heuristic,
    causal / full / window; every row no sequence holds is NaN."""
    skip_unless_runnable(config)
    lengths = [1, 15, 17, 64, 129, 700]
    nheads, nheads_kv = 8, 2
    for block_size in (16, 64, 256, None):
        if block_size is None:
            cap = max(lengths) + 5
            table = None
            k_cache, v_cache = (rand(len(lengths), cap, nheads_kv, d, dtype=dtype) for _ in range(2))
            ks = [k_cache[b : b + 1, :n].clone() for b, n in enumerate(lengths)]
            vs = [v_cache[b : b + 1, :n].clone() for b, n in enumerate(lengths)]
        else:
            k_cache, v_cache, table = make_paged(lengths, block_size, nheads_kv, d, dtype)
            ks = [gather(k_cache, table[b], n) for b, n in enumerate(lengths)]
            vs = [gather(v_cache, table[b], n) for b, n in enumerate(lengths)]
        poison_unheld_rows(k_cache, v_cache, table, lengths)
        seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
        for sq in (1, 150):
            q = rand(len(lengths), sq, nheads, d, dtype=dtype)
            check_splits_and_masks(q, (k_cache, v_cache, table, seqlens, ks, vs),
                                   f"{config} bs={block_size} sq={sq}", splits=(1, 0), masks=CACHE_MASKS,
                                   config=config)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("d", [64, 128, 256])
def test_append_writes_only_its_slots(dtype, d):
    bs, nheads, nheads_kv = 16, 16, 2
    lengths = [0, 15, 16, 40]
    k_cache, v_cache, table = make_paged([n + 3 for n in lengths], bs, nheads_kv, d, dtype)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    k_new = rand(len(lengths), 3, nheads_kv, d, dtype=dtype)
    v_new = rand(len(lengths), 3, nheads_kv, d, dtype=dtype)
    q = rand(len(lengths), 3, nheads, d, dtype=dtype)
    k_before, v_before = k_cache.clone(), v_cache.clone()
    out = attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, k=k_new, v=v_new, causal=True)
    written = torch.zeros(k_cache.shape[:2], dtype=torch.bool, device="cuda")
    for b, n in enumerate(lengths):
        for i in range(3):
            blk, row = table[b, (n + i) // bs].item(), (n + i) % bs
            written[blk, row] = True
            assert torch.equal(k_cache[blk, row], k_new[b, i]) and torch.equal(v_cache[blk, row], v_new[b, i])
    assert torch.equal(k_cache[~written], k_before[~written]) and torch.equal(v_cache[~written], v_before[~written])
    ks = [gather(k_cache, table[b], n + 3) for b, n in enumerate(lengths)]
    vs = [gather(v_cache, table[b], n + 3) for b, n in enumerate(lengths)]
    check_rows(out, None, q, ks, vs, True, (-1, -1))


def test_contiguous_cache_with_lengths_and_append():
    d, dtype, nheads, nheads_kv = 128, torch.float16, 8, 2
    lengths = [5, 1000, 63]
    cap = 1100
    k_cache = rand(len(lengths), cap, nheads_kv, d, dtype=dtype)
    v_cache = rand(len(lengths), cap, nheads_kv, d, dtype=dtype)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    k_new = rand(len(lengths), 2, nheads_kv, d, dtype=dtype)
    v_new = rand(len(lengths), 2, nheads_kv, d, dtype=dtype)
    q = rand(len(lengths), 2, nheads, d, dtype=dtype)
    k_before = k_cache.clone()
    for splits in (1, 4, 0):
        k_cache.copy_(k_before)
        got, lse = attention_with_kvcache(q, k_cache, v_cache, seqlens, k=k_new, v=v_new, num_splits=splits,
                                          return_lse=True)
        ks = [k_cache[b : b + 1, : n + 2] for b, n in enumerate(lengths)]
        vs = [v_cache[b : b + 1, : n + 2] for b, n in enumerate(lengths)]
        check_rows(got, lse, q, ks, vs, True, (-1, -1))


def test_bad_kvcache_input_writes_nothing():
    d, dtype = 64, torch.bfloat16
    k_cache, v_cache, table = make_paged([10, 20], 16, 2, d, dtype)
    seqlens = torch.tensor([10, 20], dtype=torch.int32, device="cuda")
    q = rand(2, 1, 4, d, dtype=dtype)
    k_new = rand(2, 30, 2, d, dtype=dtype)  # fits a block table of 48 slots, but not after 20 cached tokens
    before = k_cache.clone()
    with pytest.raises(ValueError, match="past the cache's capacity"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, k=k_new, v=k_new.clone(),
                               check_lengths=True)
    with pytest.raises(TypeError, match="block_table must be int32"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table.long())
    with pytest.raises(TypeError, match="cache_seqlens must be int32"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens.long(), block_table=table)
    with pytest.raises(ValueError, match="k and v must be given together"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, k=k_new)
    assert torch.equal(k_cache, before)


def paged_decode_case(block_size, nheads_kv, d, dtype):
    """A paged cache with lengths 1, block boundaries ± 1 and longer ones, and each sequence's gathered K/V."""
    lengths = [1, block_size - 1, block_size + 1, 517, 2 * block_size]
    k_cache, v_cache, table = make_paged(lengths, block_size, nheads_kv, d, dtype)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    ks = [gather(k_cache, table[b], n) for b, n in enumerate(lengths)]
    vs = [gather(v_cache, table[b], n) for b, n in enumerate(lengths)]
    return k_cache, v_cache, table, seqlens, ks, vs


DECODE_MASKS = [(True, (-1, -1)), (False, (-1, -1)), (True, (40, 0))]
CACHE_MASKS = [(True, (-1, -1)), (False, (-1, -1)), (False, (50, 0))]


def check_splits_and_masks(q, case, ctx, splits=(1, 4, 0), masks=DECODE_MASKS, **choice):
    """Each split count x mask (``(causal, window_size)``), NaN-poisoned out, vs the reference; ``case``: (k_cache,
    v_cache, table, seqlens, ks, vs); ``choice``: the call's ``variant`` / ``config``."""
    k_cache, v_cache, table, seqlens, ks, vs = case
    for n in splits:
        for causal, window in masks:
            out = torch.full_like(q, float("nan"))
            got, lse = attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, causal=causal,
                                              window_size=window, num_splits=n, return_lse=True, out=out, **choice)
            where = f"{ctx} splits={n} causal={causal} w={window}"
            assert got.data_ptr() == out.data_ptr() and not torch.isnan(got).any(), where
            try:
                check_rows(got, lse, q, ks, vs, causal, window)
            except AssertionError as e:
                raise AssertionError(f"{where}: {e}") from None


@pytest.mark.parametrize("group", [1, 2, 4, 8, 16], ids=lambda g: f"gqa{g}")
@pytest.mark.parametrize("block_size", [16, 64], ids=["bs16", "bs64"])
def test_decode_head_groups(group, block_size, monkeypatch):
    """Decode and speculative decode (1-8 query tokens) for GQA groups 1..16: the registry's choice (query heads
    packed into the CTA's rows when the group allows it, the block table read ahead for 64-token blocks), seen
    in the call's own dispatch, and every split count, against the gathered reference."""
    from cute_attention.api import kvcache

    chosen = []

    def spy(*args, **kwargs):
        chosen.append(resolve(*args, **kwargs))
        return chosen[-1]

    resolve = kvcache.resolve_variant
    monkeypatch.setattr(kvcache, "resolve_variant", spy)
    d, dtype, nheads_kv = 128, torch.bfloat16, 2
    case = paged_decode_case(block_size, nheads_kv, d, dtype)
    for sq in (1, 2, 5, 8):
        rows = sq * group
        expected = (("sm80_m16n64_w1x4_s5_pack_la" if block_size >= 64 else "sm80_m16n64_w1x4_s3_pack")
                    if group > 1 and rows <= 16 else "sm80_m64n64_w2x2_pack" if group > 1 and rows <= 64
                    else "sm80_m16n64_w1x4_s3")
        q = rand(len(case[3]), sq, nheads_kv * group, d, dtype=dtype)
        chosen.clear()
        check_splits_and_masks(q, case, f"{expected} sq={sq} group={group}")
        assert {v.name for v in chosen} == {expected}, (sq, group, {v.name for v in chosen})


@pytest.mark.parametrize("name", ["sm80_m16n64_w1x4_s3_pack", "sm80_m64n64_w2x2_pack"])
def test_packed_variants_match_unpacked(name):
    """A packed variant and its unpacked twin give the same result (fp32 rounding) for every head of a group,
    fp16, contiguous cache with lengths, GQA 4 and 8."""
    from cute_attention.host.registry import REGISTRY

    packed = REGISTRY.get(name)
    plain = REGISTRY.get(name.removesuffix("_pack"))
    d, dtype = 128, torch.float16
    for nheads, nheads_kv, sq in [(8, 2, 1), (16, 2, 2), (32, 4, 3)]:
        lengths = [3, 200, 1031]
        cap = 1100
        k_cache = rand(len(lengths), cap, nheads_kv, d, dtype=dtype)
        v_cache = rand(len(lengths), cap, nheads_kv, d, dtype=dtype)
        seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
        q = rand(len(lengths), sq, nheads, d, dtype=dtype)
        for splits in (1, 3):
            a, lse_a = attention_with_kvcache(q, k_cache, v_cache, seqlens, num_splits=splits, return_lse=True,
                                              variant=packed)
            b, lse_b = attention_with_kvcache(q, k_cache, v_cache, seqlens, num_splits=splits, return_lse=True,
                                              variant=plain)
            torch.testing.assert_close(lse_a, lse_b, atol=1e-4, rtol=1e-5)
            torch.testing.assert_close(a.float(), b.float(), atol=2e-3, rtol=2e-3)
            ks = [k_cache[i : i + 1, :n] for i, n in enumerate(lengths)]
            vs = [v_cache[i : i + 1, :n] for i, n in enumerate(lengths)]
            check_rows(a, lse_a, q, ks, vs, True, (-1, -1))


@pytest.mark.parametrize("paged", [True, False], ids=["paged", "contiguous"])
def test_lengths_past_capacity_are_clamped_without_check(paged):
    """Without check_lengths nothing reads the lengths on the host: appends past the capacity are dropped on the
    device (no other slot written, spare blocks included) and the attention reads at most the capacity."""
    d, dtype, nheads, nheads_kv, bs = 64, torch.bfloat16, 4, 2, 16
    lengths = [10, 40]  # capacity 48 per sequence; 12 new tokens overflow the second one by 4
    if paged:
        k_cache, v_cache, table = make_paged([47, 47], bs, nheads_kv, d, dtype)  # 3 + 1 blocks per row
        table = table[:, :3].contiguous()
    else:
        k_cache = rand(2, 48, nheads_kv, d, dtype=dtype)
        v_cache = rand(2, 48, nheads_kv, d, dtype=dtype)
        table = None
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    k_new = rand(2, 12, nheads_kv, d, dtype=dtype)
    v_new = rand(2, 12, nheads_kv, d, dtype=dtype)
    q = rand(2, 12, nheads, d, dtype=dtype)
    k_before, v_before = k_cache.clone(), v_cache.clone()
    out = attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, k=k_new, v=v_new)
    written = torch.zeros(k_cache.shape[:2], dtype=torch.bool, device="cuda")
    for b, n in enumerate(lengths):
        for i in range(12):
            pos = n + i
            if pos >= 48:
                continue
            slot = (table[b, pos // bs].item(), pos % bs) if paged else (b, pos)
            written[slot] = True
            assert torch.equal(k_cache[slot], k_new[b, i]) and torch.equal(v_cache[slot], v_new[b, i])
    assert torch.equal(k_cache[~written], k_before[~written]) and torch.equal(v_cache[~written], v_before[~written])
    for b, n in enumerate(lengths):
        total = min(n + 12, 48)
        kb = gather(k_cache, table[b], total) if paged else k_cache[b : b + 1, :total]
        vb = gather(v_cache, table[b], total) if paged else v_cache[b : b + 1, :total]
        check_rows(out[b : b + 1], None, q[b : b + 1], [kb], [vb], True, (-1, -1))


@pytest.mark.parametrize("group", [1, 2], ids=["gqa1", "gqa2"])
def test_simt_decode_variant(group):
    """The SIMT decode variant (by name): 8 packed rows on CUDA-core FMA, four warp groups splitting each KV tile,
    d128, paged 16 and 64, 1-4 query tokens, split counts 1, 4 and the heuristic, causal / full / window."""
    d, dtype, nheads_kv = 128, torch.bfloat16, 2
    for block_size in (16, 64):
        case = paged_decode_case(block_size, nheads_kv, d, dtype)
        for sq in (1, 8 // group // 2, 8 // group):
            q = rand(len(case[3]), sq, nheads_kv * group, d, dtype=dtype)
            check_splits_and_masks(q, case, f"bs={block_size} sq={sq}", variant="simt_m8n64_w1x4_s3_pack")


@pytest.mark.parametrize("block_size", PAGED_BLOCK_SIZES, ids=lambda b: f"bs{b}")
def test_locate_ahead_decode_variant(block_size):
    """The decode tile reading the block table one load ahead, by name (the registry takes it for blocks >= 64):
    every block size, lengths 1 and block boundaries +- 1, GQA 1 and 4 with 1-4 query tokens, split counts 1, 4
    and the heuristic, three masks."""
    d, dtype, nheads_kv = 128, torch.bfloat16, 2
    case = paged_decode_case(block_size, nheads_kv, d, dtype)
    for group, sq in ((1, 1), (4, 1), (4, 4)):
        q = rand(len(case[3]), sq, nheads_kv * group, d, dtype=dtype)
        check_splits_and_masks(q, case, f"bs={block_size} group={group} sq={sq}",
                               variant="sm80_m16n64_w1x4_s5_pack_la")


@pytest.mark.parametrize("block_size", [0, 16, 64], ids=["contiguous", "bs16", "bs64"])
def test_append_slot_ops(block_size):
    """The append kernel's vectors pass through the prologue slot: an op that doubles them writes exactly twice
    the new K and V into their slots and nothing anywhere else."""
    from row_ops import ScaleRows

    from cute_attention.host import launcher
    from cute_attention.kernels.kv_append import AppendParams

    d, dtype, nheads_kv = 128, torch.bfloat16, 2
    lengths = [0, 15, 16, 40]
    if block_size:
        k_cache, v_cache, table = make_paged([n + 3 for n in lengths], block_size, nheads_kv, d, dtype)
    else:
        k_cache, v_cache, table = rand(4, 64, nheads_kv, d, dtype=dtype), rand(4, 64, nheads_kv, d, dtype=dtype), None
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    k_new, v_new = rand(4, 3, nheads_kv, d, dtype=dtype), rand(4, 3, nheads_kv, d, dtype=dtype)
    k_before, v_before = k_cache.clone(), v_cache.clone()
    params = AppendParams("bfloat16", d, block_size, ops=(ScaleRows(2.0),))
    launcher.launch(launcher.compiled(params), k_new.device,
                    params.launch_args(k_new, v_new, k_cache, v_cache, table, seqlens))
    torch.cuda.synchronize()
    written = torch.zeros(k_cache.shape[:2], dtype=torch.bool, device="cuda")
    for b, n in enumerate(lengths):
        for i in range(3):
            pos = n + i
            slot = (table[b, pos // block_size].item(), pos % block_size) if block_size else (b, pos)
            written[slot] = True
            assert torch.equal(k_cache[slot], 2 * k_new[b, i]) and torch.equal(v_cache[slot], 2 * v_new[b, i])
    assert torch.equal(k_cache[~written], k_before[~written]) and torch.equal(v_cache[~written], v_before[~written])
