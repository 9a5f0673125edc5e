"""GPU: varlen (ragged) prefill against a per-sequence fp32 reference (skipped without a GPU).

Random ragged batches with zero-length and length-1 sequences (queries and keys), sq != sk per sequence, GQA 1/4/8,
causal / sliding window / none, LSE in FlashAttention's ``(nheads, total_q)`` layout, split-K (fixed and heuristic),
both dtypes and every head dim; poisoned outputs; bad offsets raise before any launch with the output untouched.
"""

import pytest
import torch
from test_gpu_attention import rand, skip_unless_runnable

from cute_attention import flash_attn_varlen_func
from cute_attention.api.varlen import attention_varlen
from cute_attention.kernels.variant import ALL_HEAD_DIMS
from cute_attention.tools.reference import attention_ref, tolerance_check

pytestmark = pytest.mark.gpu
DTYPES = [torch.float16, torch.bfloat16]
POISON = float("nan")


def offsets(lengths):
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    return torch.tensor(cu, dtype=torch.int32, device="cuda")


def make_batch(lens_q, lens_k, h, hkv, d, dtype):
    q = rand(sum(lens_q), h, d, dtype=dtype)
    k = rand(sum(lens_k), hkv, d, dtype=dtype)
    v = rand(sum(lens_k), hkv, d, dtype=dtype)
    return q, k, v, offsets(lens_q), offsets(lens_k)


def check_batch(out, lse, q, k, v, lens_q, lens_k, causal, window):
    """Each sequence against the reference on its own rows; every output row written (no poison left)."""
    assert torch.isfinite(out).all(), "an output row was left unwritten (poison) or is not finite"
    sq0 = sk0 = 0
    for b, (sq, sk) in enumerate(zip(lens_q, lens_k)):
        if sq:
            qb, kb, vb = q[sq0:sq0 + sq][None], k[sk0:sk0 + sk][None], v[sk0:sk0 + sk][None]
            ok, err, bound = tolerance_check(out[sq0:sq0 + sq][None], qb, kb, vb, causal=causal, window_size=window)
            assert ok, f"sequence {b} (sq {sq}, sk {sk}): max error {err:.3e} > bound {bound:.3e}"
            if lse is not None:
                _, ref_lse = attention_ref(qb, kb, vb, causal=causal, window_size=window)
                torch.testing.assert_close(lse[:, sq0:sq0 + sq], ref_lse[0], atol=2e-3, rtol=1e-4)
        sq0, sk0 = sq0 + sq, sk0 + sk


def ragged_lengths(gen, batch, low, high):
    lens = torch.randint(low, high, (batch,), generator=gen).tolist()
    return lens


@pytest.mark.parametrize("config", ["sm80", "sm90"])
@pytest.mark.parametrize("d", ALL_HEAD_DIMS, ids=[f"d{d}" for d in ALL_HEAD_DIMS])
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
@pytest.mark.parametrize("num_splits", [1, 3], ids=["split1", "split3"])
def test_varlen_matches_per_sequence_reference(config, d, dtype, num_splits):
    skip_unless_runnable(config)
    gen = torch.Generator().manual_seed(d * 7 + num_splits)
    # zero-length and length-1 sequences on both sides, sq != sk, a long one
    lens_q = [0, 1, 37, 130, 1, 200] + ragged_lengths(gen, 3, 65, 300)
    lens_k = [5, 0, 37, 257, 1, 90] + ragged_lengths(gen, 3, 1, 400)
    for (h, hkv), (causal, window) in zip([(8, 8), (8, 2), (8, 1)],
                                          [(False, (-1, -1)), (True, (-1, -1)), (False, (37, 5))]):
        q, k, v, cu_q, cu_k = make_batch(lens_q, lens_k, h, hkv, d, dtype)
        out = torch.full_like(q, POISON)
        res, lse = attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal,
                                    window_size=window, return_lse=True, out=out, num_splits=num_splits,
                                    config=config)
        assert res is out and lse.shape == (h, q.shape[0]) and lse.dtype == torch.float32
        check_batch(out, lse, q, k, v, lens_q, lens_k, causal, window)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "bf16"])
def test_varlen_short_queries_and_heuristic_splits(dtype):
    """Decode-like ragged batches (1-8 query tokens, GQA 8: the packed-GQA tiles) and num_splits=0."""
    lens_q = [1, 4, 8, 1, 0, 3]
    lens_k = [1000, 17, 4096, 1, 64, 300]
    q, k, v, cu_q, cu_k = make_batch(lens_q, lens_k, 32, 4, 128, dtype)
    for causal in (False, True):
        for splits in (1, 0):
            out, lse = attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal,
                                        return_lse=True, num_splits=splits)
            check_batch(out, lse, q, k, v, lens_q, lens_k, causal, (-1, -1))


def test_varlen_without_lse_and_fa_entry_point():
    lens_q, lens_k = [3, 100, 0, 257], [3, 300, 10, 257]
    q, k, v, cu_q, cu_k = make_batch(lens_q, lens_k, 8, 4, 128, torch.bfloat16)
    out = flash_attn_varlen_func(q, k, v, cu_q, cu_k, 257, 300, causal=True)
    check_batch(out, None, q, k, v, lens_q, lens_k, True, (-1, -1))
    out2, lse, probs = flash_attn_varlen_func(q, k, v, cu_q, cu_k, 257, 300, causal=True, return_attn_probs=True)
    assert probs is None and lse.shape == (8, q.shape[0])
    torch.testing.assert_close(out2, out, atol=0, rtol=0)


def test_varlen_equals_padded_batch():
    """Equal lengths: the ragged batch and the padded BSHD call compute the same thing."""
    from cute_attention import attention

    b, s, h, d = 3, 200, 8, 128
    q, k, v = (rand(b, s, h, d, dtype=torch.bfloat16) for _ in range(3))
    cu = offsets([s] * b)
    flat = [t.reshape(b * s, h, d) for t in (q, k, v)]
    out, lse = attention_varlen(*flat, cu, cu, s, s, causal=True, return_lse=True)
    ref, ref_lse = attention(q, k, v, causal=True, return_lse=True)
    torch.testing.assert_close(out.view(b, s, h, d), ref, atol=0, rtol=0)
    torch.testing.assert_close(lse.view(h, b, s).transpose(0, 1), ref_lse, atol=0, rtol=0)


@pytest.mark.parametrize("bad", ["int64", "not_monotone", "last_entry", "first_entry", "max_too_small",
                                 "length_mismatch"])
def test_bad_offsets_raise_before_launch(bad):
    lens = [10, 20, 30]
    q, k, v, cu_q, cu_k = make_batch(lens, lens, 4, 4, 64, torch.float16)
    max_q = 30
    error = ValueError
    if bad == "int64":
        cu_q, error = cu_q.long(), TypeError
    elif bad == "not_monotone":
        cu_q = torch.tensor([0, 20, 10, 60], dtype=torch.int32, device="cuda")
    elif bad == "last_entry":
        cu_q = torch.tensor([0, 10, 30, 59], dtype=torch.int32, device="cuda")
    elif bad == "first_entry":
        cu_q = torch.tensor([1, 10, 30, 60], dtype=torch.int32, device="cuda")
    elif bad == "max_too_small":
        max_q = 29
    else:
        cu_k = offsets(lens + [0])
    out = torch.full_like(q, POISON)
    with pytest.raises(error, match="cu_seqlens|max_seqlen"):
        attention_varlen(q, k, v, cu_q, cu_k, max_q, 30, out=out)
    assert torch.isnan(out).all(), "a refused call wrote its output"


@pytest.mark.parametrize("h,hkv", [(8, 8), (16, 2)], ids=["mha", "gqa8"])
def test_varlen_many_sequences(h, hkv):
    """75 short-to-medium sequences with runs of zero lengths, decode-like and prefill-like rows (GQA 8 packs
    heads), causal and not, split-K."""
    gen = torch.Generator().manual_seed(h)
    lens_q = torch.randint(0, 40, (75,), generator=gen).tolist()
    lens_q[31:34] = [0, 0, 0]
    lens_q[63:65] = [129, 0]
    lens_k = [n + int(x) for n, x in zip(lens_q, torch.randint(0, 300, (75,), generator=gen).tolist())]
    q, k, v, cu_q, cu_k = make_batch(lens_q, lens_k, h, hkv, 64, torch.bfloat16)
    for causal, splits in ((True, 1), (False, 3)):
        out = torch.full_like(q, POISON)
        _, lse = attention_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal, return_lse=True,
                                  out=out, num_splits=splits)
        check_batch(out, lse, q, k, v, lens_q, lens_k, causal, (-1, -1))
