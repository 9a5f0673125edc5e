"""Compile cache: one compiled kernel per :class:`CompileKey`, never keyed by tensor identity.

``cute.compile`` always recompiles, so the framework keeps its own cache. A key is a kernel's parameter record
in its compile-time form (:class:`~cute_attention.kernels.attention.AttentionParams`,
:class:`~cute_attention.kernels.split_reduce.ReduceParams`, :class:`~cute_attention.kernels.kv_append.AppendParams`:
every compile-time choice, runtime scalars reset) plus the target. Runtime scalars (softmax scale, window sizes,
split count) and sizes (batch, lengths, heads) are kernel arguments: kernels are compiled against symbolic shapes
and strides (:mod:`cute_attention.kernels.abi`), so one build serves every problem size.

Behind the in-memory map sits the on-disk cache (:mod:`cute_attention.host.disk_cache`): a key compiled by any
earlier process is loaded in milliseconds instead of compiled again. A compile logs one line on the
``cute_attention`` logger (what, for which target, how long).
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import cutlass.cute as cute
from cutlass.cute.runtime import make_fake_stream

from cute_attention.host import disk_cache
from cute_attention.host.cubin import register_counts
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.split_reduce import ReduceParams

KernelParams = AttentionParams | ReduceParams | AppendParams
log = logging.getLogger("cute_attention")


class _UnconfiguredHandler(logging.StreamHandler):
    """Prints the library's INFO lines to stderr while the application configured no logging of its own (then the
    records go to its handlers only)."""

    def emit(self, record):
        if not logging.getLogger().handlers:
            super().emit(record)


if not log.handlers:
    log.addHandler(_UnconfiguredHandler())
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


@dataclass(frozen=True)
class CompileKey:
    """A kernel's compile-time parameters and the target: everything a build depends on."""

    params: KernelParams
    target: str

    @staticmethod
    def of(params: KernelParams, target: str) -> CompileKey:
        """The key of ``params`` (its runtime fields reset, so no runtime value is held by the cache)."""
        return CompileKey(params.compile_time(), target)


@dataclass
class CompiledKernel:
    key: CompileKey
    fn: Any  # TVM-FFI callable: the kernel record's launch_args(...) without the stream (the current stream)
    smem_bytes: int
    threads: int
    compile_seconds: float
    cubin: bytes | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()  # what the DSL warned about while compiling it
    from_disk: bool = False  # loaded from the on-disk cache rather than compiled in this process

    @functools.cached_property
    def registers(self) -> int:
        """Registers per thread, read once from the cubin (the occupancy of split-count choices needs it)."""
        counts = register_counts(self.cubin) if self.cubin else []
        return max(counts) if counts else 255

    def __call__(self, *args):
        return self.fn(*args)


def _compile(kernel, args, target: str, ptxas_options: str, dump_dir: str | None):
    own_dir = None
    if dump_dir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="cute-attention-")
        dump_dir = own_dir.name
    options = f"--enable-tvm-ffi --gpu-arch {target} --keep-cubin --dump-dir {dump_dir}"
    if ptxas_options:
        options += f" --ptxas-options={ptxas_options}"
    start = time.perf_counter()
    try:
        fn = cute.compile(kernel, *args, options=options)
    finally:
        if own_dir is not None:
            own_dir.cleanup()
    cubin = fn.__cubin__
    return fn, time.perf_counter() - start, bytes(cubin) if cubin is not None else None


def compile_key(key: CompileKey, dump_dir: str | None = None) -> CompiledKernel:
    """Compile one configuration (no GPU needed) and return it with its cubin."""
    kernel = key.params.build(key.target)
    reason = kernel.why_not(key.target)
    if reason is not None:
        raise ValueError(f"{key.params.label} cannot be built for {key.target}: {reason}")
    args = (*key.params.fake_args(), make_fake_stream(use_tvm_ffi_env_stream=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the DSL ignores its optimization warnings by default
        fn, seconds, cubin = _compile(kernel, args, key.target, key.params.ptxas_options, dump_dir)
    said = tuple(sorted({f"{w.category.__name__}: {w.message}" for w in caught}))
    return CompiledKernel(key, fn, kernel.smem_bytes(), kernel.threads, seconds, cubin, said)


def _label(key: CompileKey) -> str:
    return f"{key.params.label} for {key.target}"


def load_or_compile(key: CompileKey, disk: disk_cache.DiskCache | None) -> CompiledKernel:
    """``key`` from ``disk`` when it holds it, else compiled (under the key's file lock, so concurrent processes
    compile it once) and stored there; ``disk`` None compiles only."""
    text = disk_cache.key_text(key) if disk is not None else None
    if text is None:
        return _compiled_logged(key)
    entry = disk.load(text)
    if entry is None:
        try:
            with disk.lock(text):
                entry = disk.load(text)  # another process may have written it while this one waited
                if entry is None:
                    compiled = _compiled_logged(key)
                    if compiled.cubin is not None:
                        disk.store(text, compiled.fn, compiled.cubin, compiled.smem_bytes, compiled.threads,
                                   compiled.compile_seconds, compiled.warnings)
                    return compiled
        except OSError as e:  # an unwritable or full cache directory costs the disk cache, not the call
            log.warning("cute_attention: on-disk compile cache %s unusable (%s); compiling in memory only",
                        disk.directory, e)
            return _compiled_logged(key)
    return CompiledKernel(key, entry.fn, entry.smem_bytes, entry.threads, entry.compile_seconds, entry.cubin,
                          entry.warnings, from_disk=True)


def _compiled_logged(key: CompileKey) -> CompiledKernel:
    compiled = compile_key(key)
    log.info("cute_attention: compiled %s in %.1f s", _label(key), compiled.compile_seconds)
    return compiled


class CompileCache:
    """Thread-safe map from :class:`CompileKey` to :class:`CompiledKernel`, with hit/miss counts; a miss loads
    from the on-disk cache (``disk``: the default one when enabled, ``False`` for none) or compiles."""

    def __init__(self, disk: disk_cache.DiskCache | bool | None = None):
        self._entries: dict[CompileKey, CompiledKernel] = {}
        self._lock = threading.Lock()
        self._disk = disk
        self.hits = 0
        self.misses = 0

    @property
    def disk(self) -> disk_cache.DiskCache | None:
        if self._disk is None or self._disk is True:
            return disk_cache.DiskCache() if disk_cache.enabled() else None
        return self._disk or None

    def get(self, key: CompileKey) -> CompiledKernel:
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            return entry
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                entry = load_or_compile(key, self.disk)
                self._entries[key] = entry
            return entry

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: CompileKey) -> bool:
        return key in self._entries

    def keys(self) -> list[CompileKey]:
        return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = CompileCache()
