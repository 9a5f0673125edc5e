"""Compile cache: one compiled kernel per :class:`CompileKey`, never keyed by tensor identity.

``cute.compile`` always recompiles, so the framework keeps its own cache. The key holds every
compile-time choice: the variant (Impl recipe, mainloop, cache factory, CTA map), dtype, head dim,
which mask bounds exist, whether the LSE is written, and the target. Runtime scalars (softmax
scale, window sizes, sequence lengths, batch, heads) are kernel arguments. Kernels are compiled
against symbolic shapes and strides with the ABI the API guarantees: last dim contiguous,
16-byte aligned base pointers, other strides multiples of 8 elements (the API copies inputs that
break it), so one compiled kernel serves every problem size.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass.cute.runtime import make_fake_stream, make_fake_tensor

from cute_attention.masks import MaskSpec
from cute_attention.sass import register_counts

DTYPES = {"float16": cutlass.Float16, "bfloat16": cutlass.BFloat16}
ALIGN_BYTES = 16
STRIDE_DIVISIBILITY = 8  # elements of a 16-bit type per 16 bytes


def default_target() -> str:
    """``sm_90a`` on Hopper, ``sm_80`` otherwise (or without a GPU); ``CUTE_ATTENTION_TARGET`` overrides."""
    env = os.environ.get("CUTE_ATTENTION_TARGET")
    if env:
        return env
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return "sm_90a" if (major, minor) == (9, 0) else f"sm_{major}{minor}"
    except Exception:  # noqa: BLE001 - no usable CUDA runtime: compile for the baseline target
        pass
    return "sm_80"


def sm_version(target: str) -> int:
    """``sm_90a`` -> 90."""
    return int("".join(c for c in target.removeprefix("sm_") if c.isdigit()))


def has_pdl(target: str) -> bool:
    """Programmatic dependent launch (``griddepcontrol``): sm_90 and newer."""
    return sm_version(target) >= 90


@dataclass(frozen=True)
class CompileKey:
    variant: Any
    dtype: str
    head_dim: int
    mask: MaskSpec
    with_lse: bool
    target: str
    split_kv: bool = False  # write fp32 partial O + LSE per KV split (for the reduction kernel)


@dataclass(frozen=True)
class ReduceKey:
    """The split-K reduction kernel's compile-time choices."""

    dtype: str
    head_dim: int
    with_lse: bool
    target: str


@dataclass(frozen=True)
class AppendKey:
    """The KV-append kernel's compile-time choices (``block_size`` 0: contiguous cache)."""

    dtype: str
    head_dim: int
    block_size: int
    target: str


@dataclass
class CompiledKernel:
    key: CompileKey
    fn: Any  # TVM-FFI callable (argument order: the kernel object's __call__ without the stream)
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


def _sym_strides(rank: int):
    return tuple(cute.sym_int64(divisibility=STRIDE_DIVISIBILITY) for _ in range(rank - 1)) + (1,)


def fake_bshd(dtype, head_dim: int):
    shape = (cute.sym_int(), cute.sym_int(), cute.sym_int(), head_dim)
    return make_fake_tensor(dtype, shape, stride=_sym_strides(4), assumed_align=ALIGN_BYTES)


def fake_lse(splits: bool = False):
    rank = 4 if splits else 3
    shape = tuple(cute.sym_int() for _ in range(rank))
    stride = tuple(cute.sym_int64() for _ in range(rank - 1)) + (1,)
    return make_fake_tensor(cutlass.Float32, shape, stride=stride, assumed_align=4)


def fake_paged(dtype, head_dim: int, block_size: int):
    """A paged K or V cache ``(num_blocks, block_size, nheads_kv, d)`` (block size is compile-time)."""
    shape = (cute.sym_int(), block_size, cute.sym_int(), head_dim)
    return make_fake_tensor(dtype, shape, stride=_sym_strides(4), assumed_align=ALIGN_BYTES)


def fake_int32(shape: tuple):
    """An int32 tensor with a contiguous last dim (block table, sequence lengths)."""
    stride = tuple(cute.sym_int64() for _ in range(len(shape) - 1)) + (1,)
    return make_fake_tensor(cutlass.Int32, shape, stride=stride, assumed_align=4)


def fake_partial_o(head_dim: int):
    """fp32 ``(splits, batch, seqlen_q, nheads, d)``, contiguous rows of 16-byte multiples."""
    shape = (cute.sym_int(), cute.sym_int(), cute.sym_int(), cute.sym_int(), head_dim)
    stride = tuple(cute.sym_int64(divisibility=4) for _ in range(4)) + (1,)
    return make_fake_tensor(cutlass.Float32, shape, stride=stride, assumed_align=ALIGN_BYTES)


def build_kernel(key: CompileKey):
    from cute_attention.kernel import AttentionKernel

    return AttentionKernel(key.variant, DTYPES[key.dtype], key.head_dim, key.mask, key.with_lse, key.split_kv,
                           pdl=key.split_kv and has_pdl(key.target))


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


def compile_reduce(key: ReduceKey, dump_dir: str | None = None) -> CompiledKernel:
    from cute_attention.split_reduce import SplitReduce

    kernel = SplitReduce(DTYPES[key.dtype], key.head_dim, key.with_lse, pdl=has_pdl(key.target))
    args = (fake_partial_o(key.head_dim), fake_lse(splits=True), fake_bshd(DTYPES[key.dtype], key.head_dim),
            fake_lse() if key.with_lse else None, make_fake_stream(use_tvm_ffi_env_stream=True))
    fn, seconds, cubin = _compile(kernel, args, key.target, "", dump_dir)
    return CompiledKernel(key, fn, 0, kernel.warps * 32, seconds, cubin)


def compile_append(key: AppendKey, dump_dir: str | None = None) -> CompiledKernel:
    from cute_attention.cache_iterators import LinearKVCache, PagedKVCache
    from cute_attention.kv_append import KVAppend

    dtype = DTYPES[key.dtype]
    paged = key.block_size > 0
    kernel = KVAppend(dtype, key.head_dim, PagedKVCache(key.block_size) if paged else LinearKVCache())
    cache = fake_paged(dtype, key.head_dim, key.block_size) if paged else fake_bshd(dtype, key.head_dim)
    args = (fake_bshd(dtype, key.head_dim), fake_bshd(dtype, key.head_dim), cache,
            fake_paged(dtype, key.head_dim, key.block_size) if paged else fake_bshd(dtype, key.head_dim),
            fake_int32((cute.sym_int(), cute.sym_int())) if paged else None, fake_int32((cute.sym_int(),)),
            make_fake_stream(use_tvm_ffi_env_stream=True))
    fn, seconds, cubin = _compile(kernel, args, key.target, "", dump_dir)
    return CompiledKernel(key, fn, 0, kernel.threads, seconds, cubin)


def compile_any(key) -> CompiledKernel:
    """Compile an attention, reduction or append key."""
    if isinstance(key, ReduceKey):
        return compile_reduce(key)
    if isinstance(key, AppendKey):
        return compile_append(key)
    return compile_key(key)


def compile_key(key: CompileKey, dump_dir: str | None = None) -> CompiledKernel:
    """Compile one configuration (no GPU needed) and return it with its cubin."""
    kernel = build_kernel(key)
    reason = kernel.why_not(key.target)
    if reason is not None:
        raise ValueError(f"{key.variant.name} cannot be built: {reason}")
    dtype = DTYPES[key.dtype]
    cache = key.variant.kv_cache
    kv = fake_paged(dtype, key.head_dim, cache.block_size) if cache.paged else fake_bshd(dtype, key.head_dim)
    args = (
        fake_bshd(dtype, key.head_dim),
        kv,
        fake_paged(dtype, key.head_dim, cache.block_size) if cache.paged else fake_bshd(dtype, key.head_dim),
        fake_partial_o(key.head_dim) if key.split_kv else fake_bshd(dtype, key.head_dim),
        fake_lse(splits=True) if key.split_kv else fake_lse() if key.with_lse else None,
        fake_int32((cute.sym_int(), cute.sym_int())) if cache.paged else None,
        fake_int32((cute.sym_int(),)) if cache.seqlens else None,
        cutlass.Float32(1.0),
        cutlass.Int32(0),
        cutlass.Int32(0),
        cutlass.Int32(1),
        make_fake_stream(use_tvm_ffi_env_stream=True),
    )
    fn, seconds, cubin = _compile(kernel, args, key.target, key.variant.ptxas_options, dump_dir)
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
                entry = compile_any(key)
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
