"""GPU: attention over a KV cache, paged or contiguous (``attention_with_kvcache``), against a reference that
gathers each sequence's pages; appends change only their own slots (skipped without a GPU).

Randomly permuted block tables, every block size, per-sequence lengths including 1 and block
boundaries ± 1, GQA 1/4/8/16, decode (1–8 query tokens) and longer queries, split counts 1, 3 and the
heuristic, both dtypes.
"""

import pytest
import torch
from test_gpu_attention import rand

from cute_attention import attention_with_kvcache
from cute_attention.cache_iterators import PAGED_BLOCK_SIZES
from cute_attention.reference import attention_ref, tolerance_check

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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("d", [64, 128, 256])
def test_append_writes_only_its_slots(dtype, d):
    bs, nheads, nheads_kv = 16, 16, 1
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
        attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, k=k_new, v=k_new.clone())
    with pytest.raises(TypeError, match="block_table must be int32"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table.long())
    with pytest.raises(TypeError, match="cache_seqlens must be int32"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens.long(), block_table=table)
    with pytest.raises(ValueError, match="k and v must be given together"):
        attention_with_kvcache(q, k_cache, v_cache, seqlens, block_table=table, k=k_new)
    assert torch.equal(k_cache, before)
