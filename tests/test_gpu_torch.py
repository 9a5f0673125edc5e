"""GPU: the entry points inside torch: ``torch.compile(fullgraph=True)`` with no graph break, and CUDA-graph capture
and replay of prefill and of a decode step, checked against the reference with new inputs between replays (skipped
without a GPU)."""

import pytest
import torch
from test_gpu_attention import rand
from test_gpu_kvcache import check_rows, gather, make_paged
from test_gpu_varlen import check_batch, make_batch

from cute_attention import attention, attention_with_kvcache, flash_attn_varlen_func, flash_attn_with_kvcache
from cute_attention.tools.reference import tolerance_check

pytestmark = pytest.mark.gpu


@pytest.fixture
def graph_breaks():
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield lambda: dict(torch._dynamo.utils.counters["graph_break"])
    torch._dynamo.reset()


def test_compile_fullgraph_prefill_and_varlen(graph_breaks):
    w = rand(128, 128, dtype=torch.bfloat16)

    def block(x, cu, max_q):
        b, s, h, d = x.shape
        q = (x.view(-1, d) @ w).view(b, s, h, d)  # a projection before, arithmetic after
        o = attention(q, x, x, causal=True)
        flat = flash_attn_varlen_func(q.view(-1, h, d), x.view(-1, h, d), x.view(-1, h, d), cu, cu, max_q, max_q,
                                      causal=True)
        return o * 2 + flat.view_as(o), o, q

    cu = torch.tensor([0, 100, 200], dtype=torch.int32, device="cuda")
    compiled = torch.compile(block, fullgraph=True)
    with torch.no_grad():
        for _ in range(2):  # new inputs through the same graph
            x = rand(2, 100, 4, 128, dtype=torch.bfloat16)
            got, got_o, q = compiled(x, cu, 100)
            want, _, _ = block(x, cu, 100)
            ok, err, bound = tolerance_check(got_o, q, x, x, causal=True)
            assert ok, (err, bound)
            torch.testing.assert_close(got, want, atol=6e-2, rtol=2e-2)
    assert graph_breaks() == {}


def test_compile_fullgraph_kvcache_appends(graph_breaks):
    """The cache-writing op mutates the caches inside a compiled graph exactly as in eager."""
    dtype, d = torch.float16, 128
    lengths = [3, 40, 17]
    k_cache, v_cache, table = make_paged([n + 1 for n in lengths], 16, 2, d, dtype)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    q = rand(3, 1, 8, d, dtype=dtype)
    k_new, v_new = rand(3, 1, 2, d, dtype=dtype), rand(3, 1, 2, d, dtype=dtype)

    def step(q, kc, vc, lens, table, kn, vn):
        return flash_attn_with_kvcache(q, kc, vc, kn, vn, cache_seqlens=lens, block_table=table, causal=True,
                                       return_softmax_lse=True)

    kc_e, vc_e = k_cache.clone(), v_cache.clone()
    with torch.no_grad():
        out_e, lse_e = step(q, kc_e, vc_e, seqlens, table, k_new, v_new)
        out_c, lse_c = torch.compile(step, fullgraph=True)(q, k_cache, v_cache, seqlens, table, k_new, v_new)
    assert graph_breaks() == {}
    assert torch.equal(k_cache, kc_e) and torch.equal(v_cache, vc_e)
    torch.testing.assert_close(out_c, out_e, atol=0, rtol=0)
    torch.testing.assert_close(lse_c, lse_e, atol=0, rtol=0)


@pytest.mark.parametrize("kind", ["int8", "fp8"])
def test_compile_fullgraph_quantized_cache_appends(graph_breaks, kind):
    """Over a quantized cache the op carries the parameter tensors (and declares the (scale, zero) pairs mutated:
    the append writes them): data, pairs and result equal eager's."""
    from cute_attention import quantize_kv

    dtype, d, lengths = torch.bfloat16, 128, [3, 40, 17]
    k_cache, v_cache, table = make_paged([n + 2 for n in lengths], 16, 2, d, dtype)
    (kd, kp), (vd, vp) = quantize_kv(k_cache, kind, descale=None), quantize_kv(v_cache, kind, descale=None)
    if kind == "fp8":  # per-head factors, one per (batch, head) as the kernel takes them
        kp, vp = kp[:1].expand(3, -1).contiguous(), vp[:1].expand(3, -1).contiguous()
        kd, _ = quantize_kv(k_cache, "fp8", descale=kp[:1])
        vd, _ = quantize_kv(v_cache, "fp8", descale=vp[:1])
        names = ("k_descale", "v_descale")
    else:
        names = ("k_cache_params", "v_cache_params")
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    q = rand(3, 2, 8, d, dtype=dtype)
    k_new, v_new = rand(3, 2, 2, d, dtype=dtype), rand(3, 2, 2, d, dtype=dtype)

    def step(q, kc, vc, kparams, vparams, lens, table, kn, vn):
        return attention_with_kvcache(q, kc, vc, lens, block_table=table, k=kn, v=vn, return_lse=True,
                                      **{names[0]: kparams, names[1]: vparams})

    eager = [t.clone() for t in (kd, vd, kp, vp)]
    with torch.no_grad():
        out_e, lse_e = step(q, *eager, seqlens, table, k_new, v_new)
        out_c, lse_c = torch.compile(step, fullgraph=True)(q, kd, vd, kp, vp, seqlens, table, k_new, v_new)
    assert graph_breaks() == {}
    for got, want in zip((kd, vd, kp, vp), eager):
        assert torch.equal(got.view(torch.uint8) if got.dtype == torch.float8_e4m3fn else got,
                           want.view(torch.uint8) if want.dtype == torch.float8_e4m3fn else want)
    torch.testing.assert_close(out_c, out_e, atol=0, rtol=0)
    torch.testing.assert_close(lse_c, lse_e, atol=0, rtol=0)


@pytest.mark.parametrize("num_splits", [1, 3])
def test_cuda_graph_prefill_replays_with_new_inputs(num_splits):
    b, s, h, hkv, d = 2, 300, 8, 2, 128
    q, k, v = rand(b, s, h, d, dtype=torch.bfloat16), rand(b, s, hkv, d, dtype=torch.bfloat16), \
        rand(b, s, hkv, d, dtype=torch.bfloat16)
    attention(q, k, v, causal=True, return_lse=True, num_splits=num_splits)  # the first call compiles: not in capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, lse = attention(q, k, v, causal=True, return_lse=True, num_splits=num_splits)
    for _ in range(3):
        for t in (q, k, v):
            t.copy_(rand(*t.shape, dtype=t.dtype))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ok, err, bound = tolerance_check(out, q, k, v, causal=True)
        assert ok, (err, bound)
        ref_out, ref_lse = attention(q, k, v, causal=True, return_lse=True, num_splits=num_splits)
        torch.testing.assert_close(lse, ref_lse, atol=0, rtol=0)


@pytest.mark.parametrize("num_splits", [1, 4])
def test_cuda_graph_decode_step_with_appends(num_splits):
    """One captured decode step (append + attention, split-K with its reduction) replayed as the lengths grow."""
    dtype, d, bs, h, hkv = torch.bfloat16, 128, 64, 16, 4
    lengths = [1, 63, 200, 1000]
    steps = 3
    k_cache, v_cache, table = make_paged([n + steps for n in lengths], bs, hkv, d, dtype)
    seqlens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    q = rand(len(lengths), 1, h, d, dtype=dtype)
    k_new, v_new = rand(len(lengths), 1, hkv, d, dtype=dtype), rand(len(lengths), 1, hkv, d, dtype=dtype)
    kw = dict(block_table=table, k=k_new, v=v_new, num_splits=num_splits, return_lse=True)
    saved = k_cache.clone(), v_cache.clone()
    attention_with_kvcache(q, k_cache, v_cache, seqlens, **kw)  # compile outside the capture
    torch.cuda.synchronize()
    k_cache.copy_(saved[0])
    v_cache.copy_(saved[1])
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, lse = attention_with_kvcache(q, k_cache, v_cache, seqlens, **kw)
    k_cache.copy_(saved[0])  # capture does not run the kernels, but keep the test independent of that
    v_cache.copy_(saved[1])
    now = list(lengths)
    for _ in range(steps):
        for t in (q, k_new, v_new):
            t.copy_(rand(*t.shape, dtype=t.dtype))
        graph.replay()
        torch.cuda.synchronize()
        for b, n in enumerate(now):
            blk, row = table[b, n // bs].item(), n % bs
            assert torch.equal(k_cache[blk, row], k_new[b, 0]) and torch.equal(v_cache[blk, row], v_new[b, 0])
        ks = [gather(k_cache, table[b], n + 1) for b, n in enumerate(now)]
        vs = [gather(v_cache, table[b], n + 1) for b, n in enumerate(now)]
        check_rows(out, lse, q, ks, vs, True, (-1, -1))
        seqlens += 1  # the next step appends after this one's token (in place: the graph reads this tensor)
        now = [n + 1 for n in now]


def test_cuda_graph_varlen():
    lens_q, lens_k = [5, 0, 120], [5, 9, 130]
    q, k, v, cu_q, cu_k = make_batch(lens_q, lens_k, 8, 8, 64, torch.float16)
    flash_attn_varlen_func(q, k, v, cu_q, cu_k, 120, 130, causal=True)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = flash_attn_varlen_func(q, k, v, cu_q, cu_k, 120, 130, causal=True)
    for _ in range(2):
        for t in (q, k, v):
            t.copy_(rand(*t.shape, dtype=t.dtype))
        graph.replay()
        torch.cuda.synchronize()
        check_batch(out, None, q, k, v, lens_q, lens_k, True, (-1, -1))
