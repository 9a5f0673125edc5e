"""Compile cache: one compiled kernel per :class:`CompileKey`, never keyed by tensor identity.

``cute.compile`` always recompiles, so the framework keeps its own cache. A key is a kernel's parameter record
in its compile-time form (:class:`~cute_attention.kernels.attention.AttentionParams`,
:class:`~cute_attention.kernels.split_reduce.ReduceParams`, :class:`~cute_attention.kernels.kv_append.AppendParams`:
every compile-time choice, runtime scalars reset) plus the target. Runtime scalars (softmax scale, window sizes,
split count) and sizes (batch, lengths, heads) are kernel arguments: kernels are compiled against symbolic shapes
and strides (:mod:`cute_attention.kernels.abi`), so one build serves every problem size.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cutlass.cute as cute
from cutlass.cute.runtime import make_fake_stream

from cute_attention.host.cubin import register_counts
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.split_reduce import ReduceParams

KernelParams = AttentionParams | ReduceParams | AppendParams


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
    fn, seconds, cubin = _compile(kernel, args, key.target, key.params.ptxas_options, dump_dir)
    return CompiledKernel(key, fn, kernel.smem_bytes(), kernel.threads, seconds, cubin)


class CompileCache:
    """Thread-safe map from :class:`CompileKey` to :class:`CompiledKernel`, with hit/miss counts."""

    def __init__(self):
        self._entries: dict[CompileKey, CompiledKernel] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: CompileKey) -> CompiledKernel:
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            return entry
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                entry = compile_key(key)
                self._entries[key] = entry
            return entry

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[CompileKey]:
        return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


CACHE = CompileCache()
