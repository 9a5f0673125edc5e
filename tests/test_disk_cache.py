"""CPU: the on-disk compile cache. An entry round-trips (a second cache loads it without compiling), damaged
entries are rebuilt, concurrent processes compile a key once, unstable keys are never stored, and a user's
source edit names a new entry."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from cute_attention.host import disk_cache
from cute_attention.host.compile_cache import CompileCache, CompileKey
from cute_attention.kernels.split_reduce import ReduceParams

KEY = CompileKey.of(ReduceParams("float16", 64, True), "sm_80")


@pytest.fixture
def disk(tmp_path, monkeypatch):
    monkeypatch.setenv("CUTE_ATTENTION_CACHE_DIR", str(tmp_path))
    return disk_cache.DiskCache(tmp_path / "fp")


def test_entry_round_trips(disk):
    first = CompileCache(disk).get(KEY)
    assert not first.from_disk
    files = sorted(p.suffix for p in disk.directory.iterdir())
    assert files == [".cubin", ".json", ".lock", ".o"]
    second = CompileCache(disk).get(KEY)
    assert second.from_disk
    assert (second.cubin, second.smem_bytes, second.threads, second.registers) == (
        first.cubin, first.smem_bytes, first.threads, first.registers)
    assert second.compile_seconds == pytest.approx(first.compile_seconds)
    assert callable(second.fn)


@pytest.mark.parametrize("damage", ["truncate_obj", "garble_cubin", "bad_json", "other_key", "no_obj"])
def test_damaged_entry_is_rebuilt(disk, damage):
    CompileCache(disk).get(KEY)
    text = disk_cache.key_text(KEY)
    _, obj, cubin, meta = disk.paths(text)
    if damage == "truncate_obj":
        obj.write_bytes(obj.read_bytes()[:100])
    elif damage == "garble_cubin":
        cubin.write_bytes(b"\0" * cubin.stat().st_size)
    elif damage == "bad_json":
        meta.write_text(meta.read_text()[:20])
    elif damage == "other_key":
        m = json.loads(meta.read_text())
        m["key"] = "something else"
        meta.write_text(json.dumps(m))
    else:
        obj.unlink()
    assert disk.load(text) is None
    assert not meta.exists()
    rebuilt = CompileCache(disk).get(KEY)
    assert not rebuilt.from_disk
    assert CompileCache(disk).get(KEY).from_disk


def test_unstable_key_is_compiled_not_stored(disk, monkeypatch):
    class NoRepr:
        pass

    assert disk_cache.key_text(("x", NoRepr())) is None
    calls = []

    def fake(key):
        calls.append(key)
        from types import SimpleNamespace
        return SimpleNamespace(compile_seconds=0.0, cubin=b"", fn=None)

    monkeypatch.setattr("cute_attention.host.compile_cache.compile_key", fake)
    monkeypatch.setattr(disk_cache, "key_text", lambda key: None)
    CompileCache(disk).get(KEY)
    assert len(calls) == 1 and not disk.directory.exists()


def test_disabled_by_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CUTE_ATTENTION_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CUTE_ATTENTION_CACHE", "0")
    assert CompileCache().disk is None
    monkeypatch.setenv("CUTE_ATTENTION_CACHE", "1")
    assert CompileCache().disk.directory == tmp_path / disk_cache.fingerprint()


def test_unwritable_directory_compiles_in_memory(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = CompileCache(disk_cache.DiskCache(blocker / "sub"))
    assert not cache.get(KEY).from_disk
    assert "unusable" in caplog.text


def test_user_source_edit_names_a_new_entry(tmp_path, monkeypatch):
    mod = tmp_path / "my_blocks.py"
    mod.write_text("from dataclasses import dataclass\n@dataclass(frozen=True)\nclass Op:\n    k: int = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_blocks

    before = disk_cache.key_text(("key", my_blocks.Op()))
    assert "sources=" in before
    mod.write_text(mod.read_text() + "# edited\n")
    assert disk_cache.key_text(("key", my_blocks.Op())) != before
    assert "sources=" not in disk_cache.key_text(KEY)  # package types are covered by the fingerprint


def test_fingerprint_covers_package_sources(monkeypatch, tmp_path):
    fp = disk_cache.fingerprint()
    src = tmp_path / "pkg"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(disk_cache, "_package_dirs", lambda: [src])
    disk_cache.fingerprint.cache_clear()
    try:
        one = disk_cache.fingerprint()
        (src / "a.py").write_text("x = 2\n")
        disk_cache.fingerprint.cache_clear()
        assert disk_cache.fingerprint() not in (one, fp)
    finally:
        disk_cache.fingerprint.cache_clear()


def test_concurrent_processes_compile_a_key_once(tmp_path):
    """Three processes ask for one key at once: one compiles, the others wait on the lock and load."""
    script = textwrap.dedent(f"""
        import sys, time
        from cute_attention.host import disk_cache
        from cute_attention.host.compile_cache import CompileCache, CompileKey
        from cute_attention.kernels.split_reduce import ReduceParams
        while time.time() < {time.time() + 6}:
            time.sleep(0.01)
        c = CompileCache(disk_cache.DiskCache(sys.argv[1])).get(CompileKey.of(ReduceParams("bfloat16", 64, False),
                                                                              "sm_80"))
        print("disk" if c.from_disk else "compiled")
    """)
    env = dict(os.environ, CUTE_ATTENTION_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "fp")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(o[0].strip() for o in outs) == ["compiled", "disk", "disk"]
