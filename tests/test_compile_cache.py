"""CPU: a compile key holds every compile-time choice and no runtime value; one compile per key."""

import dataclasses
from types import SimpleNamespace

import pytest

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CompileCache, CompileKey
from cute_attention.host.registry import SM75_M64N64, SM80_M64N64, SM80_M128N64_S4L
from cute_attention.kernels.abi import runtime_fields
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.split_reduce import ReduceParams
from cute_attention.kernels.variant import Variant


def params(**kw):
    base = dict(variant=SM80_M64N64, dtype="bfloat16", head_dim=64, mask=MaskSpec(False, True), with_lse=True)
    base.update(kw)
    return AttentionParams(**base)


def key(target="sm_80", **kw):
    return CompileKey.of(params(**kw), target)


def test_records_split_compile_time_and_runtime_fields():
    compile_time = {f.name for f in dataclasses.fields(AttentionParams)} - set(runtime_fields(AttentionParams))
    assert compile_time == {"variant", "dtype", "head_dim", "mask", "with_lse", "split_kv", "q_ops", "varlen"}
    assert set(runtime_fields(AttentionParams)) == {"softmax_scale", "window_left", "window_right", "num_splits"}
    assert not runtime_fields(ReduceParams) and not runtime_fields(AppendParams)
    assert {f.name for f in dataclasses.fields(CompileKey)} == {"params", "target"}
    for f in dataclasses.fields(Variant):
        assert f.name in {"name", "impl", "mainloop", "kv_cache", "cta_map", "config", "head_dims", "dtypes",
                          "ptxas_options", "spill_budget", "pack_gqa", "targets", "kv_quant"}


def test_runtime_values_never_reach_the_key():
    k0 = key()
    defaults = {f.name: f.default for f in dataclasses.fields(AttentionParams) if f.metadata.get("runtime")}
    for kw in (dict(softmax_scale=0.3), dict(window_left=17), dict(window_right=4), dict(num_splits=9)):
        k = key(**kw)
        assert k == k0 and hash(k) == hash(k0)
        assert {f: getattr(k.params, f) for f in defaults} == defaults, "the key kept a runtime value"


@pytest.mark.parametrize("record,tensors", [(params(), 7), (ReduceParams("bfloat16", 64, True), 4),
                                            (AppendParams("bfloat16", 64, 16), 6)])
def test_fake_args_match_the_launch_record(record, tensors):
    """What a compile sees and what a launch passes have the same arity, record type and order."""
    fake = record.fake_args()
    launch = record.launch_args(*[object()] * tensors)
    assert len(fake) == len(launch) and type(fake[0]) is type(launch[0]) and len(fake[0]) == len(launch[0])


def test_persistent_launch_carries_the_sm_count():
    """A persistent kernel's launch needs the CTA count (the SM count, a runtime argument, never part of the key);
    asking for a launch without it raises before anything runs."""
    from cute_attention.host.registry import SM90_M128N128

    pers = dataclasses.replace(SM90_M128N128, name="sm90_pers",
                               mainloop=dataclasses.replace(SM90_M128N128.mainloop, persistent=True))
    p = params(variant=pers, head_dim=128)
    fake = p.fake_args()
    args, _ = p.launch_args(*[object()] * 5, num_ctas=132)
    assert args.num_ctas == 132 and fake[0].num_ctas is not None and len(fake[0]) == len(args)
    with pytest.raises(ValueError, match="num_ctas"):
        p.launch_args(*[object()] * 5)
    plain, _ = params().launch_args(*[object()] * 5, num_ctas=132)
    assert plain.num_ctas is None and params().fake_args()[0].num_ctas is None
    assert CompileKey.of(p, "sm_90a") == CompileKey.of(dataclasses.replace(p, num_splits=3), "sm_90a")


def test_launch_args_carry_the_runtime_scalars():
    p = params(softmax_scale=0.125, window_left=61, window_right=17, num_splits=3)
    args, splits = p.launch_args("q", "k", "v", "o", "lse", "table", "lens")
    assert (args.mQ, args.mO, args.mLSE, args.mPageTable, args.mSeqlensK) == ("q", "o", "lse", "table", "lens")
    assert (args.window_left, args.window_right, splits) == (61, 17, 3)
    assert args.scale_log2 == pytest.approx(0.125 * 1.4426950408889634, rel=1e-7)


def test_every_choice_changes_the_key():
    k0 = key()
    variants = [
        key(variant=SM80_M128N64_S4L), key(dtype="float16"), key(head_dim=128), key(mask=MaskSpec(True, True)),
        key(with_lse=False), key(target="sm_90a"),
        key(variant=dataclasses.replace(SM80_M64N64, mainloop=dataclasses.replace(SM80_M64N64.mainloop, stages=3))),
        key(variant=dataclasses.replace(SM80_M64N64, ptxas_options="-O1")),
        key(variant=dataclasses.replace(SM80_M64N64, impl=dataclasses.replace(SM80_M64N64.impl, ldsm_ahead=1))),
        key(variant=dataclasses.replace(SM80_M64N64, impl=dataclasses.replace(SM80_M64N64.impl, q_in_regs=True))),
        key(variant=dataclasses.replace(SM80_M64N64, impl=dataclasses.replace(SM80_M64N64.impl,
                                                                              rescale_threshold=8.0))),
        key(variant=SM75_M64N64),
        key(split_kv=True),
        key(varlen=True),
        key(q_ops=(object(),)),
    ]
    assert len({k0, *variants}) == len(variants) + 1
    assert key() == k0 and hash(key()) == hash(k0)


def test_cache_compiles_once_per_key(monkeypatch):
    calls = []

    def fake_compile(k):
        calls.append(k)
        return SimpleNamespace(compile_seconds=0.0)

    monkeypatch.setattr("cute_attention.host.compile_cache.compile_key", fake_compile)
    cache = CompileCache(disk=False)
    a = cache.get(key())
    b = cache.get(key(softmax_scale=0.5))
    c = cache.get(key(with_lse=False))
    assert a is b and a is not c
    assert len(calls) == 2 and cache.misses == 2 and cache.hits == 1


def test_scale_log2_is_the_device_fp32_product():
    """The host folds log2(e) into the scale as the device's fp32 multiply would (numpy float32 as the oracle)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for s in [*rng.uniform(1e-3, 2.0, 500), 64**-0.5, 96**-0.5, 128**-0.5, 1.0]:
        want = np.float32(s) * np.float32(1.4426950408889634)
        assert params(softmax_scale=float(s)).scale_log2 == float(want), s
