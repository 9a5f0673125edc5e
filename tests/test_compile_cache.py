"""CPU: the compile key holds every compile-time choice and nothing else."""

import dataclasses

from cute_attention.compile_cache import CompileCache, CompileKey, ReduceKey
from cute_attention.masks import MaskSpec
from cute_attention.registry import SM75_M64N64, SM80_M64N64, SM80_M128N64_S4L
from cute_attention.variant import Variant


def key(**kw):
    base = dict(variant=SM80_M64N64, dtype="bfloat16", head_dim=64, mask=MaskSpec(False, True), with_lse=True,
                target="sm_80")
    base.update(kw)
    return CompileKey(**base)


def test_key_fields_are_compile_time_choices_only():
    names = {f.name for f in dataclasses.fields(CompileKey)}
    assert names == {"variant", "dtype", "head_dim", "mask", "with_lse", "target", "split_kv"}
    assert {f.name for f in dataclasses.fields(ReduceKey)} == {"dtype", "head_dim", "with_lse", "target"}
    for f in dataclasses.fields(Variant):
        assert f.name in {"name", "impl", "mainloop", "kv_cache", "cta_map", "arch", "head_dims", "dtypes",
                          "ptxas_options", "spill_budget", "pack_gqa"}


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
    ]
    assert len({k0, *variants}) == len(variants) + 1
    assert key() == k0 and hash(key()) == hash(k0)


def test_cache_compiles_once_per_key(monkeypatch):
    calls = []

    def fake_compile(k):
        calls.append(k)
        return object()

    monkeypatch.setattr("cute_attention.compile_cache.compile_key", fake_compile)
    cache = CompileCache()
    a = cache.get(key())
    b = cache.get(key())
    c = cache.get(key(with_lse=False))
    assert a is b and a is not c
    assert len(calls) == 2 and cache.misses == 2 and cache.hits == 1
