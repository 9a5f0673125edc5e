"""CPU: the torch-facing surface. FlashAttention-2 signatures argument by argument, unsupported arguments refused by
name, forward-only calls refused when gradients would be lost, a fake-tensor ``torch.compile(fullgraph=True)``
trace through the custom ops, and the host checks of varlen offsets and of ``cache_batch_idx``."""

import inspect

import pytest
import torch

import cute_attention
from cute_attention import (
    attention,
    attention_with_kvcache,
    flash_attn_func,
    flash_attn_varlen_func,
    flash_attn_with_kvcache,
)
from cute_attention.api.flash_attn import _rows_as_pages
from cute_attention.api.varlen import VarlenPlan, attention_varlen

# FlashAttention 2's documented signatures (flash_attn/flash_attn_interface.py): (name, default), all positional
_EMPTY = inspect.Parameter.empty
FA2 = {
    "flash_attn_func": [
        ("q", _EMPTY), ("k", _EMPTY), ("v", _EMPTY), ("dropout_p", 0.0), ("softmax_scale", None), ("causal", False),
        ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None), ("deterministic", False),
        ("return_attn_probs", False)],
    "flash_attn_varlen_func": [
        ("q", _EMPTY), ("k", _EMPTY), ("v", _EMPTY), ("cu_seqlens_q", _EMPTY), ("cu_seqlens_k", _EMPTY),
        ("max_seqlen_q", _EMPTY), ("max_seqlen_k", _EMPTY), ("dropout_p", 0.0), ("softmax_scale", None),
        ("causal", False), ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None),
        ("deterministic", False), ("return_attn_probs", False), ("block_table", None)],
    "flash_attn_with_kvcache": [
        ("q", _EMPTY), ("k_cache", _EMPTY), ("v_cache", _EMPTY), ("k", None), ("v", None), ("rotary_cos", None),
        ("rotary_sin", None), ("cache_seqlens", None), ("cache_batch_idx", None), ("cache_leftpad", None),
        ("block_table", None), ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)),
        ("softcap", 0.0), ("rotary_interleaved", True), ("alibi_slopes", None), ("num_splits", 0),
        ("return_softmax_lse", False)],
}


@pytest.mark.parametrize("name", sorted(FA2))
def test_signatures_match_flash_attention_2(name):
    params = list(inspect.signature(getattr(cute_attention, name)).parameters.values())
    assert [(p.name, p.default) for p in params] == FA2[name]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)


def _qkv(b=1, s=8, h=2, d=64, requires_grad=False):
    return [torch.randn(b, s, h, d, dtype=torch.bfloat16, requires_grad=requires_grad) for _ in range(3)]


@pytest.mark.parametrize("arg,value", [("dropout_p", 0.1), ("softcap", 30.0), ("alibi_slopes", torch.ones(2))])
def test_flash_attn_func_refuses_unbuilt_features(arg, value):
    q, k, v = _qkv()
    with pytest.raises(NotImplementedError, match=arg):
        flash_attn_func(q, k, v, **{arg: value})


@pytest.mark.parametrize("arg,value", [("dropout_p", 0.5), ("softcap", 1.0), ("alibi_slopes", torch.ones(2)),
                                       ("block_table", torch.zeros(1, 1, dtype=torch.int32))])
def test_flash_attn_varlen_func_refuses_unbuilt_features(arg, value):
    q, k, v = (t[0] for t in _qkv())
    cu = torch.tensor([0, 8], dtype=torch.int32)
    with pytest.raises(NotImplementedError, match=arg):
        flash_attn_varlen_func(q, k, v, cu, cu, 8, 8, **{arg: value})


@pytest.mark.parametrize("arg", ["rotary_cos", "rotary_sin", "cache_leftpad", "softcap", "alibi_slopes"])
def test_flash_attn_with_kvcache_refuses_unbuilt_features(arg):
    q, kc, vc = _qkv()
    value = 5.0 if arg == "softcap" else torch.ones(4)
    with pytest.raises(NotImplementedError, match=arg):
        flash_attn_with_kvcache(q, kc, vc, cache_seqlens=4, **{arg: value})


def test_off_values_pass_the_refusals():
    """dropout 0, softcap 0, deterministic=True (forward is deterministic): no refusal; the call reaches the
    device check (these are CPU tensors)."""
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="CUDA"):
        flash_attn_func(q, k, v, dropout_p=0.0, softcap=0.0, deterministic=True)


@pytest.mark.parametrize("entry", ["attention", "flash_attn_func", "kvcache", "varlen"])
def test_gradients_are_refused_not_lost(entry):
    q, k, v = _qkv(requires_grad=True)

    def call():
        if entry == "attention":
            attention(q, k, v)
        elif entry == "flash_attn_func":
            flash_attn_func(q, k, v)
        elif entry == "kvcache":
            attention_with_kvcache(q, k.detach(), v.detach(), torch.zeros(1, dtype=torch.int32))
        else:
            cu = torch.tensor([0, 8], dtype=torch.int32)
            attention_varlen(q[0], k[0], v[0], cu, cu, 8, 8)

    with pytest.raises(RuntimeError, match="forward-only.*q"):
        call()
    with torch.no_grad(), pytest.raises(ValueError, match="CUDA"):  # no grad mode: no refusal (CPU tensors)
        call()


def test_compile_fullgraph_traces_through_the_ops():
    """Meta tensors through torch.compile(fullgraph=True): one graph holding the three ops, fake shapes right."""
    import torch._dynamo

    dev = "meta"
    q = torch.empty(2, 16, 4, 64, device=dev, dtype=torch.bfloat16)
    k = torch.empty(2, 16, 2, 64, device=dev, dtype=torch.bfloat16)
    kc = torch.empty(2, 64, 2, 64, device=dev, dtype=torch.bfloat16)
    lens = torch.empty(2, dtype=torch.int32, device=dev)
    cu = torch.empty(3, dtype=torch.int32, device=dev)
    knew = torch.empty(2, 1, 2, 64, device=dev, dtype=torch.bfloat16)

    def model(q, k, kc, lens, cu, knew):
        o1, lse1 = attention(q, k, k, causal=True, return_lse=True)
        o2, lse2, probs = flash_attn_func(q, k, k, causal=True, return_attn_probs=True)
        o3 = flash_attn_with_kvcache(q[:, :1], kc, kc, knew, knew, cache_seqlens=lens, causal=True)
        o4, lse4, _ = flash_attn_varlen_func(q.flatten(0, 1), k.flatten(0, 1), k.flatten(0, 1), cu, cu, 16, 16,
                                             return_attn_probs=True)
        return o1 + o2 + o4.view_as(o1), lse1, lse2, o3, lse4, probs

    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        out = torch.compile(model, fullgraph=True, backend=backend)(q, k, kc, lens, cu, knew)
    torch._dynamo.reset()
    assert len(graphs) == 1
    code = graphs[0].code
    for op in ("cute_attention.attention.default", "cute_attention.attention_with_kvcache.default",
               "cute_attention.attention_varlen.default"):
        assert op in code, op
    assert [tuple(t.shape) for t in out[:5]] == [(2, 16, 4, 64), (2, 4, 16), (2, 4, 16), (2, 1, 4, 64), (4, 32)]
    assert out[5] is None


def test_unregistered_variant_cannot_pass_through_an_op():
    import dataclasses

    from cute_attention.api.ops import variant_name
    from cute_attention.host.registry import SM80_M64N64

    assert variant_name(SM80_M64N64) == SM80_M64N64.name and variant_name(None) is None
    with pytest.raises(NotImplementedError, match="variant"):
        variant_name(dataclasses.replace(SM80_M64N64, name="mine"))


def _plan(max_q=30, max_k=30):
    return VarlenPlan(None, None, None, False, (False,) * 3, max_q, max_k, True)


@pytest.mark.parametrize("cu_q,total,match", [
    ([0, 20, 10, 60], 60, "non-decreasing"), ([0, 10, 30, 59], 60, "end at"), ([1, 10, 30, 60], 60, "start at 0"),
    ([0, 10, 20, 51], 51, "longer than max_seqlen_q"),
])
def test_varlen_offsets_are_checked(cu_q, total, match):
    cu_k = torch.tensor([0, 10, 30, 60], dtype=torch.int32)
    with pytest.raises(ValueError, match=match):
        _plan().check_offsets(torch.tensor(cu_q, dtype=torch.int32), cu_k, total, 60)
    _plan().check_offsets(cu_k, cu_k, 60, 60)  # a good pair passes


def test_varlen_offset_types_are_checked():
    q, k, v = (t[0] for t in _qkv())
    cu = torch.tensor([0, 8], dtype=torch.int32)
    with pytest.raises(TypeError, match="cu_seqlens_q must be int32"):
        attention_varlen(q, k, v, cu.long(), cu, 8, 8)
    with pytest.raises(TypeError, match="max_seqlen_k must be an int"):
        attention_varlen(q, k, v, cu, cu, 8, 8.0)


def test_cache_batch_idx_becomes_a_block_table():
    """Each sequence's block-table row names exactly the blocks of its cache row."""
    b_cache, s, h, d = 5, 96, 2, 8
    kc = torch.randn(b_cache, s, h, d)
    idx = torch.tensor([3, 0, 3], dtype=torch.int32)
    q = torch.empty(3, 1, 4, d)
    pk, pv, table = _rows_as_pages(kc, kc.clone(), idx, None, q)
    block = pk.shape[1]
    assert s % block == 0 and block == 32
    for b, row in enumerate(idx.tolist()):
        gathered = pk[table[b].long()].reshape(s, h, d)
        assert torch.equal(gathered, kc[row])
    with pytest.raises(NotImplementedError, match="cache_batch_idx"):
        _rows_as_pages(torch.randn(2, 40, h, d), torch.randn(2, 40, h, d), idx[:2], None, q[:2])
    with pytest.raises(TypeError, match="cache_batch_idx must be int32"):
        _rows_as_pages(kc, kc, idx.long(), None, q)


def test_compile_traces_a_quantized_cache_through_the_op():
    """Meta tensors: an int8 cache's (scale, zero) pairs reach the op as arguments (not dropped by the traced path)."""
    import torch._dynamo

    dev = "meta"
    q = torch.empty(2, 1, 4, 64, device=dev, dtype=torch.bfloat16)
    kc = torch.empty(2, 64, 2, 64, device=dev, dtype=torch.int8)
    kp = torch.empty(2, 64, 2, 2, device=dev, dtype=torch.bfloat16)
    lens = torch.empty(2, dtype=torch.int32, device=dev)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        out = torch.compile(lambda q, kc, kp, lens: attention_with_kvcache(q, kc, kc, lens, k_cache_params=kp,
                                                                           v_cache_params=kp),
                            fullgraph=True, backend=backend)(q, kc, kp, lens)
    torch._dynamo.reset()
    assert len(graphs) == 1 and tuple(out.shape) == (2, 1, 4, 64)
    nodes = list(graphs[0].graph.nodes)
    params = [n for n in nodes if n.op == "placeholder" and "kp" in n.name]  # an unused input has no placeholder
    call = next(n for n in nodes if "attention_with_kvcache" in str(n.target))
    assert len(params) == 1 and params[0] in call.all_input_nodes
