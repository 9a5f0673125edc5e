"""On-disk compile cache: each compiled kernel exported to an object file, loaded back by later processes.

An entry is three files named by the digest of its compile key: ``<digest>.o`` (the TVM-FFI function exported by the
DSL, host code and embedded cubin), ``<digest>.cubin`` (for register counts and SASS checks) and ``<digest>.json``
(what launch needs: shared memory and threads; the key's text, the compile time and warnings, and the SHA-256 of
the two binaries). The JSON is written last, so it marks a complete entry; an entry whose JSON, key or hashes do not
check out is removed and rebuilt. Entries live under a directory named by a fingerprint of the package sources and
the DSL, TVM-FFI and Python versions, so a changed source or library never loads an old build. One process
compiles a key while the others wait on its file lock and then load what it wrote.

``CUTE_ATTENTION_CACHE_DIR`` sets the root (default ``$XDG_CACHE_HOME/cute-attention`` or
``~/.cache/cute-attention``); ``CUTE_ATTENTION_CACHE=0`` turns the disk cache off. A key whose text holds an object
address (a block without a stable ``repr``) is compiled but never stored: its text would not name it next time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import platform
import sys
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

SCHEMA = 1
_DISTRIBUTIONS = ("nvidia-cutlass-dsl", "nvidia-cutlass-dsl-libs-base", "nvidia-cutlass-dsl-libs-core",
                  "nvidia-cutlass-dsl-libs-cu12", "nvidia-cutlass-dsl-libs-cu13", "apache-tvm-ffi")


def enabled() -> bool:
    return os.environ.get("CUTE_ATTENTION_CACHE", "1").strip().lower() not in ("0", "false", "off", "no")


def root() -> Path:
    env = os.environ.get("CUTE_ATTENTION_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cute-attention"


def _package_dirs() -> list[Path]:
    """The package's source folders: ``cute_attention/`` and ``arch/`` (installed as ``cute_attention.arch``)."""
    arch = importlib.util.find_spec("cute_attention.arch")
    return [Path(__file__).resolve().parent.parent, Path(arch.submodule_search_locations[0]).resolve()]


@functools.cache
def fingerprint() -> str:
    """A digest of every package source file and the versions of the DSL, TVM-FFI and Python."""
    python = f"{sys.implementation.name} {sys.version_info.major}.{sys.version_info.minor}"
    h = hashlib.sha256(f"schema {SCHEMA}\n{python}\n{platform.machine()}\n".encode())
    for dist in _DISTRIBUTIONS:
        try:
            h.update(f"{dist} {importlib.metadata.version(dist)}\n".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist} -\n".encode())
    for base in _package_dirs():
        for path in sorted(base.rglob("*.py")):
            h.update(str(path.relative_to(base)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def fingerprint_dirs(base: Path) -> list[Path]:
    """The entry directories under a cache root (named by a fingerprint; nothing else there is ours)."""
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and len(p.name) == 16
                  and all(c in "0123456789abcdef" for c in p.name))


def _types(obj, found: set) -> None:
    """Every type in a key's tree of dataclasses and tuples."""
    found.add(type(obj))
    if isinstance(obj, (tuple, list)):
        for x in obj:
            _types(x, found)
    elif is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            _types(getattr(obj, f.name), found)


def _source_digest(key) -> str:
    """A digest of the source files outside the package that define a type in ``key`` (a user's composed block
    or op), so an edit there names a new entry; empty when every type is the package's or a library's."""
    types: set = set()
    _types(key, types)
    own = tuple(str(p) for p in _package_dirs())
    paths = set()
    for t in types:
        try:
            path = inspect.getsourcefile(t)
        except TypeError:  # built-in types
            continue
        if path and os.path.isfile(path) and not path.startswith(own) and "-packages" not in path:
            paths.add(path)
    if not paths:
        return ""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.encode())
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def key_text(key) -> str | None:
    """The text that names ``key`` on disk, or None when it holds an object address (not stable across runs)."""
    text = repr(key)
    if " at 0x" in text:
        return None
    extra = _source_digest(key)
    return f"{text} sources={extra}" if extra else text


@dataclass
class Entry:
    """A loaded entry: the TVM-FFI function and what launch and the catalogue need."""

    fn: object
    cubin: bytes
    smem_bytes: int
    threads: int
    compile_seconds: float
    warnings: tuple[str, ...]


class DiskCache:
    """The entries of one fingerprint directory."""

    def __init__(self, directory: Path | None = None):
        self.directory = Path(directory) if directory is not None else root() / fingerprint()

    def paths(self, text: str) -> tuple[str, Path, Path, Path]:
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        base = self.directory / digest
        return digest, base.with_suffix(".o"), base.with_suffix(".cubin"), base.with_suffix(".json")

    def load(self, text: str) -> Entry | None:
        """The entry named by ``text``, or None when it is missing or does not check out (then it is removed)."""
        digest, obj, cubin, meta_path = self.paths(text)
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            obj_bytes, cubin_bytes = obj.read_bytes(), cubin.read_bytes()
            ok = (meta.get("key") == text and meta.get("schema") == SCHEMA
                  and hashlib.sha256(obj_bytes).hexdigest() == meta["obj_sha256"]
                  and hashlib.sha256(cubin_bytes).hexdigest() == meta["cubin_sha256"])
            if ok:
                from cutlass.cute.runtime import load_module

                fn = getattr(load_module(str(obj), enable_tvm_ffi=True), meta["function"])
                return Entry(fn, cubin_bytes, int(meta["smem_bytes"]), int(meta["threads"]),
                             float(meta["compile_seconds"]), tuple(meta.get("warnings", ())))
        except Exception:  # noqa: BLE001 - any damaged or foreign entry is rebuilt, never a crash
            pass
        self.remove(text)
        return None

    def store(self, text: str, fn, cubin: bytes, smem_bytes: int, threads: int, compile_seconds: float,
              warnings: tuple[str, ...] = ()) -> None:
        """Export ``fn`` and write the entry (binaries first, the JSON last; each file atomically)."""
        digest, obj, cubin_path, meta_path = self.paths(text)
        self.directory.mkdir(parents=True, exist_ok=True)
        function = f"cute_attention_{digest[:16]}"
        tmp = obj.with_suffix(f".o.tmp{os.getpid()}")
        fn.export_to_c(str(tmp), function_name=function)
        obj_bytes = tmp.read_bytes()
        os.replace(tmp, obj)
        _write_atomic(cubin_path, cubin)
        meta = {"schema": SCHEMA, "key": text, "function": function, "smem_bytes": smem_bytes, "threads": threads,
                "compile_seconds": compile_seconds, "warnings": list(warnings),
                "obj_sha256": hashlib.sha256(obj_bytes).hexdigest(), "cubin_sha256": hashlib.sha256(cubin).hexdigest()}
        _write_atomic(meta_path, json.dumps(meta, indent=1).encode())

    def remove(self, text: str) -> None:
        for path in self.paths(text)[1:]:
            with contextlib.suppress(OSError):
                path.unlink()

    @contextlib.contextmanager
    def lock(self, text: str):
        """An exclusive file lock on one key: the holder compiles and stores it, the others wait."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.paths(text)[0]}.lock"
        with open(path, "a+") as f:
            try:
                import fcntl
            except ImportError:  # no POSIX locks (Windows): concurrent writers only race on atomic renames
                yield
                return
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f"{path.suffix}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
