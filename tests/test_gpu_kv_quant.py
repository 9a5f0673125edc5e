"""GPU: attention over quantized KV caches (int8 / int4 with (scale, zero) pairs, fp8 with descale factors)
against the fp32 reference on the dequantized cache (FlashAttention's tolerance rule), with the error against the
unquantized K/V reported; skipped without a GPU.

Paged caches of every block size (randomly permuted tables) and contiguous ones, lengths 1 and block boundaries
± 1, GQA 1/4/8, decode and prefill rows, split counts 1 / 3 / heuristic, both dtypes, every head dim, outputs
poisoned with NaN, and NaN in every parameter (or fp8 byte) no sequence holds.
"""

import pytest
import torch
from test_gpu_attention import rand
from test_gpu_kvcache import gather, make_paged

from cute_attention import attention_with_kvcache, dequantize_kv, quantize_kv
from cute_attention.kv import PAGED_BLOCK_SIZES
from cute_attention.tools.reference import attention_ref, tolerance_check

pytestmark = pytest.mark.gpu
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pow2(factors: torch.Tensor) -> torch.Tensor:
    """Descale factors rounded up to powers of two: e4m3 values times them are exact in bf16, so the reference's
    dequantized K/V are the values the kernel multiplies (it scales S and O instead of K and V)."""
    return torch.exp2(torch.ceil(torch.log2(factors)))


def quantized(cache: torch.Tensor, kind: str, param_dtype, paged: bool):
    """(data, params or descale, the kernel's descale argument) of ``cache``. fp8: per (batch, head) factors of a
    contiguous cache; one factor per head (amax over the whole cache) for a paged one; powers of two."""
    if kind != "fp8":
        data, params = quantize_kv(cache, kind, param_dtype=param_dtype)
        return data, params, None
    dims = (1, 3) if not paged else (0, 1, 3)
    factors = pow2(cache.float().abs().amax(dim=dims) / 448.0)
    factors = factors if not paged else factors[None]
    data, descale = quantize_kv(cache, "fp8", descale=factors)
    return data, descale, factors


def held_rows(shape, table, lengths):
    """(dim0, rows) mask of the cache rows some sequence holds."""
    held = torch.zeros(shape[:2], dtype=torch.bool, device="cuda")
    for b, n in enumerate(lengths):
        t = torch.arange(n, device="cuda")
        if table is None:
            held[b, t] = True
        else:
            held[table[b, t // shape[1]].long(), t % shape[1]] = True
    return held


def poison(data, params, held):
    """NaN where no sequence reads: (scale, zero) of int caches, the bytes of fp8 ones."""
    if data.dtype == torch.float8_e4m3fn:
        data.view(torch.uint8)[~held] = 0x7F  # e4m3fn NaN
    else:
        params[~held] = float("nan")


def run_case(q, caches, lengths, table, kind, param_dtype, causal, window, splits, label):
    """One call per split count on poisoned outputs; each row against the reference on the dequantized cache.
    Returns the largest error against the reference on the unquantized cache."""
    batch = len(lengths)
    (kd, kp, k_arg), (vd, vp, v_arg) = (quantized(c, kind, param_dtype, table is not None) for c in caches)
    k_deq = dequantize_kv(kd, kp).to(q.dtype)  # the values the kernel's MMAs multiply
    v_deq = dequantize_kv(vd, vp).to(q.dtype)
    held = held_rows(kd.shape, table, lengths)
    poison(kd, kp, held)
    poison(vd, vp, held)
    if kind == "fp8":
        extra = dict(k_descale=k_arg.expand(batch, -1)[:batch], v_descale=v_arg.expand(batch, -1)[:batch])
    else:
        extra = dict(k_cache_params=kp, v_cache_params=vp)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    rows = (lambda c, b, n: gather(c, table[b], n)) if table is not None else (lambda c, b, n: c[b : b + 1, :n])
    worst = 0.0
    for s in splits:
        out = torch.full_like(q, float("nan"))
        got, lse = attention_with_kvcache(q, kd, vd, seqlens, block_table=table, causal=causal, window_size=window,
                                          num_splits=s, return_lse=True, out=out, **extra)
        assert got.data_ptr() == out.data_ptr()
        for b, n in enumerate(lengths):
            kb, vb = rows(k_deq, b, n), rows(v_deq, b, n)
            ok, err, bound = tolerance_check(got[b : b + 1], q[b : b + 1], kb, vb, causal=causal,
                                             window_size=window)
            assert ok, f"{label} splits={s} batch {b} (len {n}): max error {err:.3e} > bound {bound:.3e}"
            _, ref_lse = attention_ref(q[b : b + 1], kb, vb, causal=causal, window_size=window)
            torch.testing.assert_close(lse[b : b + 1], ref_lse, atol=2e-3, rtol=1e-4)
            exact, _ = attention_ref(q[b : b + 1], rows(caches[0], b, n), rows(caches[1], b, n), causal=causal,
                                     window_size=window)
            worst = max(worst, (got[b : b + 1].float() - exact).abs().max().item())
    return worst


FORMATS = [("int8", None), ("int4", None), ("fp8", None), ("int8", torch.float32)]
FORMAT_IDS = ["int8", "int4", "fp8", "int8_f32"]


@pytest.mark.parametrize("bs", PAGED_BLOCK_SIZES, ids=[f"bs{b}" for b in PAGED_BLOCK_SIZES])
def test_int8_decode_every_block_size(bs):
    """Decode (1 and 4 query rows) over a paged int8 cache of each block size: GQA 1/4/8, split counts."""
    d, dtype = 128, torch.bfloat16
    lengths = [1, bs - 1, bs, bs + 1, 3 * bs + 5, 700]
    for (nheads, nheads_kv), sq in (((8, 8), 1), ((16, 4), 4), ((32, 4), 1)):
        k_cache, v_cache, table = make_paged(lengths, bs, nheads_kv, d, dtype)
        q = rand(len(lengths), sq, nheads, d, dtype=dtype)
        run_case(q, (k_cache, v_cache), lengths, table, "int8", None, True, (-1, -1), (1, 3, 0),
                 f"int8 bs={bs} h={nheads}/{nheads_kv} sq={sq}")


@pytest.mark.parametrize("kind,param_dtype", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_formats_paged16_and_contiguous(kind, param_dtype, dtype):
    """Every format in both dtypes: a paged cache of 16-token blocks (several blocks a tile) and a contiguous
    cache with room left; GQA 8 decode, GQA 1 with 3 query rows."""
    d, lengths = 128, [1, 15, 17, 64, 129, 700]
    for paged in (True, False):
        for (nheads, nheads_kv), sq in (((16, 2), 1), ((4, 4), 3)):
            if paged:
                k_cache, v_cache, table = make_paged(lengths, 16, nheads_kv, d, dtype)
            else:
                table = None
                k_cache, v_cache = (rand(len(lengths), max(lengths) + 9, nheads_kv, d, dtype=dtype) for _ in range(2))
            q = rand(len(lengths), sq, nheads, d, dtype=dtype)
            run_case(q, (k_cache, v_cache), lengths, table, kind, param_dtype, True, (-1, -1), (1, 0),
                     f"{kind} paged={paged} h={nheads}/{nheads_kv} sq={sq}")


@pytest.mark.parametrize("kind", ["int8", "int4", "fp8"])
@pytest.mark.parametrize("d", [64, 96, 192, 256])
def test_head_dims_and_masks(kind, d):
    """Every other head dim over a contiguous cache, GQA 8; causal, and for int8 full and a sliding window too."""
    dtype, lengths, nheads, nheads_kv = torch.bfloat16, [1, 63, 64, 65, 300], 16, 2
    k_cache, v_cache = (rand(len(lengths), max(lengths) + 7, nheads_kv, d, dtype=dtype) for _ in range(2))
    q = rand(len(lengths), 1, nheads, d, dtype=dtype)
    masks = ((True, (-1, -1)), (False, (-1, -1)), (False, (40, 0))) if kind == "int8" else ((True, (-1, -1)),)
    for causal, window in masks:
        run_case(q, (k_cache, v_cache), lengths, None, kind, None, causal, window, (1, 0),
                 f"{kind} d={d} causal={causal} w={window}")


@pytest.mark.parametrize("kind", ["int8", "int4", "fp8"])
def test_prefill_over_cache(kind):
    """Prefill rows (37 and 150 query tokens, sq != sk) over a paged quantized cache: the prefill tiles dequantize
    too."""
    d, bs, nheads, nheads_kv, lengths = 128, 64, 8, 2, [40, 150, 700]
    k_cache, v_cache, table = make_paged(lengths, bs, nheads_kv, d, torch.bfloat16)
    for sq in (37, 150):
        q = rand(len(lengths), sq, nheads, d, dtype=torch.bfloat16)
        run_case(q, (k_cache, v_cache), lengths, table, kind, None, True, (-1, -1), (1, 0),
                 f"{kind} prefill sq={sq}")


def test_error_against_unquantized():
    """The figures docs/quantized_kv.md reports: max |out - attention(unquantized K/V)| on unit-normal data (b 4,
    32/8 heads, d128, 4k keys, bf16, paged 64); int8 within 2e-2."""
    d, lengths, nheads, nheads_kv, bs = 128, [4096] * 4, 32, 8, 64
    k_cache, v_cache, table = make_paged(lengths, bs, nheads_kv, d, torch.bfloat16)
    q = rand(len(lengths), 1, nheads, d, dtype=torch.bfloat16)
    worst = {kind: run_case(q, (k_cache, v_cache), lengths, table, kind, None, True, (-1, -1), (1,), kind)
             for kind in ("int8", "int4", "fp8")}
    print("max |out - unquantized reference|:", {k: f"{v:.2e}" for k, v in worst.items()})
    assert worst["int8"] <= 2e-2


@pytest.mark.parametrize("kind,param_dtype", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize("bs", [16, 64, None], ids=["bs16", "bs64", "contiguous"])
def test_quantizing_append_is_byte_exact(kind, param_dtype, bs):
    """New K/V through ``attention_with_kvcache(k=, v=)`` land quantized in their slots byte for byte as the torch
    reference quantizer writes them (data and parameters); every other slot keeps its bytes; the attention that
    follows sees them."""
    d, nheads, nheads_kv, new, dtype = 128, 8, 2, 3, torch.bfloat16
    lengths = [0, 15, 16, 40]
    if bs is None:
        table = None
        k_cache, v_cache = (rand(len(lengths), 64, nheads_kv, d, dtype=dtype) for _ in range(2))
    else:
        k_cache, v_cache, table = make_paged([n + new for n in lengths], bs, nheads_kv, d, dtype)
    (kd, kp, k_arg), (vd, vp, v_arg) = (quantized(c, kind, param_dtype, table is not None) for c in (k_cache, v_cache))
    batch = len(lengths)
    if kind == "fp8":
        extra = dict(k_descale=k_arg.expand(batch, -1)[:batch].contiguous(),
                     v_descale=v_arg.expand(batch, -1)[:batch].contiguous())
    else:
        extra = dict(k_cache_params=kp, v_cache_params=vp)
    k_new, v_new = (rand(batch, new, nheads_kv, d, dtype=dtype) for _ in range(2))
    q = rand(batch, new, nheads, d, dtype=dtype)
    before = [t.clone() for t in (kd, vd, kp, vp)]
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    out = attention_with_kvcache(q, kd, vd, seqlens, block_table=table, k=k_new, v=v_new, causal=True, **extra)
    written = torch.zeros(kd.shape[:2], dtype=torch.bool, device="cuda")
    for b, n in enumerate(lengths):
        for i in range(new):
            slot = (b, n + i) if table is None else (table[b, (n + i) // bs].item(), (n + i) % bs)
            written[slot] = True
            for data, params, src, desc in ((kd, kp, k_new, extra.get("k_descale")),
                                            (vd, vp, v_new, extra.get("v_descale"))):
                if kind == "fp8":
                    want = quantize_kv(src[b : b + 1, i : i + 1], "fp8", descale=desc[b : b + 1])[0][0, 0]
                    assert torch.equal(data[slot].view(torch.uint8), want.view(torch.uint8)), (b, i)
                else:
                    want, want_params = quantize_kv(src[b : b + 1, i : i + 1], kind, param_dtype=params.dtype)
                    assert torch.equal(data[slot], want[0, 0]), (b, i)
                    assert torch.equal(params[slot], want_params[0, 0]), (b, i)
    for now, then in zip((kd, vd), before[:2]):
        assert torch.equal(now[~written].view(torch.uint8), then[~written].view(torch.uint8))
    if kind != "fp8":
        for now, then in zip((kp, vp), before[2:]):
            assert torch.equal(now[~written], then[~written])
    rows = (lambda c, b, n: gather(c, table[b], n)) if table is not None else (lambda c, b, n: c[b : b + 1, :n])
    k_deq = dequantize_kv(kd, kp if kind != "fp8" else k_arg.expand(kd.shape[0], -1)).to(dtype)
    v_deq = dequantize_kv(vd, vp if kind != "fp8" else v_arg.expand(vd.shape[0], -1)).to(dtype)
    for b, n in enumerate(lengths):
        ok, err, bound = tolerance_check(out[b : b + 1], q[b : b + 1], rows(k_deq, b, n + new),
                                         rows(v_deq, b, n + new), causal=True)
        assert ok, f"batch {b}: max error {err:.3e} > bound {bound:.3e}"
