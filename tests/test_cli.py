"""CPU: the command line. Its name, ``--version``, usage errors (exit 2, naming what is known), composed variants
by ``file.py:attr``, and exit 1 when a build breaks its blocks' promises."""

import dataclasses
import os
import subprocess
import sys

import pytest

from cute_attention.tools import cli

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "docs", "examples", "compose_variant.py")


def run_main(argv, monkeypatch, capsys, prog="/venv/bin/cute-attention"):
    monkeypatch.setattr(sys, "argv", [prog])
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out + out.err


def test_help_names_the_command_it_was_run_as(monkeypatch, capsys):
    code, text = run_main(["--help"], monkeypatch, capsys)
    assert code == 0 and text.startswith("usage: cute-attention")
    code, text = run_main(["--help"], monkeypatch, capsys, prog="/src/cute_attention/__main__.py")
    assert code == 0 and text.startswith("usage: python -m cute_attention")


def test_version():
    done = subprocess.run([sys.executable, "-m", "cute_attention", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("cute-attention ") and "nvidia-cutlass-dsl" in done.stdout


def test_unknown_target_and_variant_are_usage_errors(monkeypatch, capsys):
    code, text = run_main(["catalog", "--target", "sm_99", "--no-gpu"], monkeypatch, capsys)
    assert code == 2 and "unknown target 'sm_99'" in text and "sm_90a" in text and "Traceback" not in text
    code, text = run_main(["catalog", "--variant", "nope", "--no-gpu"], monkeypatch, capsys)
    assert code == 2 and "no variant named 'nope'" in text and "sm80_m128n64_s2" in text
    code, text = run_main(["catalog", "--variant", "no_such_file.py:x", "--no-gpu"], monkeypatch, capsys)
    assert code == 2 and "no file 'no_such_file.py'" in text
    code, text = run_main(["catalog", "--variant", f"{EXAMPLE}:nothing", "--no-gpu"], monkeypatch, capsys)
    assert code == 2 and "has no attribute 'nothing'" in text


def test_composed_variant_is_listed(monkeypatch, capsys):
    code, text = run_main(["catalog", "--target", "sm_80", "--no-gpu", "--variant", f"{EXAMPLE}:my_variant"],
                          monkeypatch, capsys)
    assert code == 0, text
    assert text.count("my_m64n64_w2x2_s3") >= 2 and "2 kernels" in text  # d64 and d128


def test_a_broken_promise_fails_the_catalogue(monkeypatch, capsys):
    from cute_attention.arch.sm80 import Sm80CpAsync
    from cute_attention.host.registry import SM80_M64N64

    @dataclasses.dataclass(frozen=True)
    class OverPromising(Sm80CpAsync):
        sass_required = ("LDGSTS", "HGMMA")  # an Sm80 ring never issues warpgroup MMAs

    broken = dataclasses.replace(SM80_M64N64, name="over_promising", mainloop=OverPromising(2), head_dims=(64,))
    monkeypatch.setattr(cli, "load_variants", lambda spec: [broken])
    code, text = run_main(["catalog", "--target", "sm_80", "--no-gpu", "--variant", "x"], monkeypatch, capsys)
    assert code == 1 and "BROKEN PROMISE over_promising d=64: no HGMMA" in text


def test_known_targets_include_hopper():
    from cute_attention.core.targets import check_target, known_targets

    assert {"sm_80", "sm_90a"} <= set(known_targets())
    with pytest.raises(ValueError, match="unknown target 'sm_75'"):
        check_target("sm_75")


def test_precompile_fills_the_cache_then_finds_it(tmp_path, monkeypatch, capsys):
    """One key: compiled by the first run, already cached for the second, listed by ``cache``; a new process loads
    it instead of compiling."""
    monkeypatch.setenv("CUTE_ATTENTION_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CUTE_ATTENTION_CACHE", "1")  # the suite may run with the cache off
    argv = ["precompile", "--target", "sm_80", "--variant", "sm80_m64n64_s2", "--head-dim", "64", "--dtype",
            "float16", "--mask", "causal", "--lse", "no", "--no-split", "-j", "1"]
    code, text = run_main(argv, monkeypatch, capsys)
    assert code == 0 and "1 kernels (1 compiled, 0 already cached, 0 failed)" in text, text
    code, text = run_main(argv, monkeypatch, capsys)
    assert code == 0 and "(0 compiled, 1 already cached, 0 failed)" in text, text
    code, text = run_main(["cache"], monkeypatch, capsys)
    assert code == 0 and ": 1 kernels" in text, text
    probe = ("from cute_attention.host.compile_cache import CACHE, CompileKey;"
             "from cute_attention.host.registry import SM80_M64N64;"
             "from cute_attention.kernels.attention import AttentionParams;"
             "from cute_attention.core.masks import MaskSpec;"
             "k = CompileKey.of(AttentionParams(SM80_M64N64, 'float16', 64, MaskSpec(False, True)), 'sm_80');"
             "print(CACHE.get(k).from_disk)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=dict(os.environ, CUTE_ATTENTION_CACHE_DIR=str(tmp_path), CUTE_ATTENTION_CACHE="1"))
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-2000:]
    code, text = run_main(["cache", "--clear"], monkeypatch, capsys)
    assert code == 0 and "removed 1 fingerprint directory" in text and not any(tmp_path.iterdir())


def test_precompile_usage_errors(monkeypatch, capsys):
    code, text = run_main(["precompile", "--target", "sm_80", "--kv", "paged7"], monkeypatch, capsys)
    assert code == 2 and "unknown KV layout 'paged7'" in text
    code, text = run_main(["precompile", "--target", "sm_80", "--config", "sm99"], monkeypatch, capsys)
    assert code == 2 and "unknown ['sm99']" in text


def test_precompile_keys_cover_the_features():
    from cute_attention.host.registry import SM80_M64N64
    from cute_attention.tools import precompile

    sel = precompile.Selection(targets=("sm_80", "sm_90a"), variants=(SM80_M64N64,), head_dims=(64, 128),
                               dtypes=("bfloat16",), masks=("none", "causal"), lse=(False, True),
                               kv=("linear", "paged64"), split=True, append=True)
    keys = list(precompile.keys(sel))
    assert len(keys) == len(set(keys))
    labels = [(k.target, k.params.label) for k in keys]
    # per target, layout, head dim: 2 masks x (2 LSE + 1 split) attention builds; per head dim 2 reductions
    # (shared by layouts) and 1 append (paged only)
    assert len(keys) == 2 * (2 * 2 * 2 * 3 + 2 * 2 + 2 * 1)
    assert ("sm_90a", "KV append (bfloat16, d128, paged 64)") in labels
    assert ("sm_80", "sm80_m64n64_s2+paged (bfloat16, d64, causal, LSE, split-K)") in labels


def test_precompile_has_no_varlen_builds_of_paged_variants():
    """attention_varlen refuses variants that read a paged cache, so precompile builds none, and the kernels
    refuse the combination themselves."""
    from cute_attention.core.masks import MaskSpec
    from cute_attention.host.registry import SM80_M64N64, SM90_M128N128_CP
    from cute_attention.kernels.attention import AttentionParams
    from cute_attention.kernels.variant import with_kv_cache
    from cute_attention.kv import PagedKVCache
    from cute_attention.tools import precompile

    sel = precompile.Selection(targets=("sm_90a",), variants=(SM90_M128N128_CP, SM80_M64N64), head_dims=(128,),
                               dtypes=("bfloat16",), masks=("causal",), lse=(False,), kv=("linear",), split=False,
                               varlen=True)
    ragged = {(k.params.variant.name, k.params.varlen) for k in precompile.keys(sel)}
    assert ragged == {(SM90_M128N128_CP.name, False), (SM80_M64N64.name, False), (SM80_M64N64.name, True)}
    for variant, target in ((SM90_M128N128_CP, "sm_90a"), (with_kv_cache(SM80_M64N64, PagedKVCache(64)), "sm_80")):
        params = AttentionParams(variant, "bfloat16", 128, MaskSpec(False, True), varlen=True)
        assert "paged cache" in params.build(target).why_not(target)
        assert AttentionParams(variant, "bfloat16", 128, MaskSpec(False, True)).build(target).why_not(target) is None


def test_precompile_quantized_cache_keys():
    """--kv-quant adds each format's builds to the cache layouts (none to linear), pairs in the call's dtype unless
    named; builds a kernel refuses (no dequant step in sm90, fp8 before sm_89) are left out."""
    from cute_attention.host.registry import SM80_M16N64_W1X4_PACK, SM90_M128N128
    from cute_attention.kv.quant import KVQuant
    from cute_attention.tools import precompile

    sel = precompile.Selection(targets=("sm_80", "sm_90a"), variants=(SM80_M16N64_W1X4_PACK, SM90_M128N128),
                               head_dims=(128,), dtypes=("float16",), masks=("causal",), lse=(True,),
                               kv=("linear", "paged64"), split=False, kv_quant=("int8", "int4_f32", "fp8"))
    quant = {(k.target, k.params.variant.kv_cache.name, k.params.variant.kv_quant) for k in precompile.keys(sel)
             if k.params.variant.kv_quant is not None}
    assert quant == {("sm_80", "paged", KVQuant("int8", "float16")), ("sm_80", "paged", KVQuant("int4", "float32")),
                     ("sm_90a", "paged", KVQuant("int8", "float16")), ("sm_90a", "paged", KVQuant("int4", "float32")),
                     ("sm_90a", "paged", KVQuant("fp8"))}
    for bad in ("int2", "fp8_f32", "int8_f64"):
        with pytest.raises(ValueError, match="unknown KV quantization"):
            precompile.kv_quant(bad, "float16")
