"""``cute-attention precompile``: fill the on-disk compile cache for chosen targets, head dims, dtypes and
features on any machine (no GPU needed), so a GPU run, a container image or CI starts warm.

The keys are those the entry points build for the chosen features: every registered variant of the chosen
config(s) (or the named ones) for each KV layout (``linear``: :func:`~cute_attention.attention`; ``seqlens`` and
``paged<B>``: :func:`~cute_attention.attention_with_kvcache`), head dim, dtype, mask and LSE choice; with
``split`` the split-K builds and the reduction kernels; with ``append`` the KV append kernels; with ``varlen`` the
ragged builds (:func:`~cute_attention.api.varlen.attention_varlen`) of the linear layout (variants that read
a paged cache have none); with ``kv_quant`` formats the quantized builds of the cache layouts (``int8``, ``int4``:
(scale, zero) pairs in the call's dtype, as :func:`~cute_attention.quantize_kv` makes them by default;
``int8_f32``, ``int4_f32``, ``int8_f16``, ...: pairs of that dtype; ``fp8``).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cute_attention.core.masks import MaskSpec
from cute_attention.host import disk_cache
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.split_reduce import ReduceParams
from cute_attention.kernels.variant import Variant, with_kv_cache, with_kv_quant
from cute_attention.kv import PAGED_BLOCK_SIZES, LinearKVCache, PagedKVCache
from cute_attention.kv.quant import KV_QUANT_KINDS, KVQuant
from cute_attention.tools.progress import Progress

MASKS = {"none": MaskSpec(False, False), "causal": MaskSpec(False, True), "window": MaskSpec(True, True),
         "left": MaskSpec(True, False)}
KV_LAYOUTS = ("linear", "seqlens", *(f"paged{b}" for b in PAGED_BLOCK_SIZES))


def kv_cache(layout: str):
    """The KV cache layout a ``--kv`` name stands for (None: the variant's own, as :func:`attention` uses)."""
    if layout == "linear":
        return None
    if layout == "seqlens":
        return LinearKVCache(seqlens=True)
    if layout.startswith("paged") and layout[5:].isdigit() and int(layout[5:]) in PAGED_BLOCK_SIZES:
        return PagedKVCache(int(layout[5:]))
    raise ValueError(f"unknown KV layout {layout!r}; known: {', '.join(KV_LAYOUTS)}")


PARAM_SUFFIXES = {"f16": "float16", "bf16": "bfloat16", "f32": "float32"}


def kv_quant(name: str, dtype: str) -> KVQuant:
    """The format a ``--kv-quant`` name stands for in a ``dtype`` build (``int8``: pairs of ``dtype``)."""
    kind, _, suffix = name.partition("_")
    if kind not in KV_QUANT_KINDS or (suffix and (kind == "fp8" or suffix not in PARAM_SUFFIXES)):
        raise ValueError(f"unknown KV quantization {name!r}; known: int8, int4, fp8, or int8/int4 with a "
                         f"parameter dtype suffix ({', '.join('_' + k for k in PARAM_SUFFIXES)})")
    if kind == "fp8":
        return KVQuant("fp8")
    return KVQuant(kind, PARAM_SUFFIXES[suffix] if suffix else dtype)


@dataclass(frozen=True)
class Selection:
    """What to precompile (every field a tuple of choices)."""

    targets: tuple[str, ...]
    variants: tuple[Variant, ...]
    head_dims: tuple[int, ...] | None = None  # None: each variant's own
    dtypes: tuple[str, ...] = ("float16", "bfloat16")
    masks: tuple[str, ...] = ("none", "causal")
    lse: tuple[bool, ...] = (False, True)
    kv: tuple[str, ...] = ("linear",)
    split: bool = True
    append: bool = False
    varlen: bool = False  # also the varlen (ragged) builds of the linear layout
    kv_quant: tuple[str, ...] = ()  # also the quantized builds of the cache layouts (names for :func:`kv_quant`)


def keys(sel: Selection) -> Iterator[CompileKey]:
    """The compile keys of ``sel``, each once."""
    seen = set()
    for key in _keys(sel):
        if key not in seen:
            seen.add(key)
            yield key


def _buildable(key: CompileKey) -> bool:
    """Attention keys of target-bound variants (sm90) or quantized caches that their kernel refuses (paged, varlen,
    no dequant step, fp8 before sm_89, ...) are skipped: those calls run other variants or are refused before any
    launch. Every other key is compiled, so a broken build still fails."""
    variant = key.params.variant
    if variant.targets is None and variant.kv_quant is None:
        return True
    return key.params.build(key.target).why_not(key.target) is None


def _keys(sel: Selection) -> Iterable[CompileKey]:
    for key in _all_keys(sel):
        if not isinstance(key.params, AttentionParams) or _buildable(key):
            yield key


def _all_keys(sel: Selection) -> Iterable[CompileKey]:
    for target in sel.targets:
        for layout in sel.kv:
            cache = kv_cache(layout)
            quants = (None, *sel.kv_quant) if cache is not None else (None,)
            for base, quant in ((b, q) for b in sel.variants for q in quants):
                if base.targets is not None and target not in base.targets:
                    continue
                for d in base.head_dims:
                    if sel.head_dims is not None and d not in sel.head_dims:
                        continue
                    for dtype in (t for t in sel.dtypes if t in base.dtypes):
                        variant = base if cache is None else with_kv_cache(base, cache)
                        if quant is not None:
                            variant = with_kv_quant(variant, kv_quant(quant, dtype))
                        for mask in sel.masks:
                            ragged = sel.varlen and cache is None and not base.kv_cache.paged
                            for varlen in (False, True) if ragged else (False,):
                                for lse in sel.lse:
                                    yield CompileKey.of(AttentionParams(variant, dtype, d, MASKS[mask], with_lse=lse,
                                                                        varlen=varlen), target)
                                if sel.split:
                                    yield CompileKey.of(AttentionParams(variant, dtype, d, MASKS[mask], with_lse=True,
                                                                        split_kv=True, varlen=varlen), target)
                        if sel.split:
                            for lse in sel.lse:
                                yield CompileKey.of(ReduceParams(dtype, d, lse), target)
                        if sel.append and cache is not None and quant is None:
                            yield CompileKey.of(AppendParams(dtype, d, cache.block_size), target)


def _quiet() -> None:
    """Worker processes: the progress line reports each key, not the per-compile log line."""
    import logging

    logging.getLogger("cute_attention").setLevel(logging.WARNING)


def _load_or_compile(key: CompileKey) -> tuple[str, float, bool]:
    """(label, compile seconds, whether it was cached already: on disk or in this process)."""
    known = key in CACHE
    entry = CACHE.get(key)
    return key.params.label, entry.compile_seconds, known or entry.from_disk


def run(sel: Selection, jobs: int = 1) -> tuple[int, int, list[str]]:
    """Compile (or find on disk) every key of ``sel``; returns (compiled, already cached, failures)."""
    if not disk_cache.enabled():
        raise RuntimeError("precompile fills the on-disk cache, which CUTE_ATTENTION_CACHE=0 turns off")
    todo = list(keys(sel))
    progress = Progress(len(todo), "precompile")
    compiled = cached = 0
    failures = []
    start = time.perf_counter()

    def account(key, result=None, error=None):
        nonlocal compiled, cached
        if error is not None:
            failures.append(f"{key.params.label} for {key.target}: {error}")
        elif result[2]:
            cached += 1
        else:
            compiled += 1
        progress.step(f"{key.params.label} {key.target}")

    if jobs <= 1:
        _quiet()
        for key in todo:
            try:
                account(key, _load_or_compile(key))
            except Exception as e:  # noqa: BLE001 - report every key that cannot be built, then fail
                account(key, error=e)
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_quiet) as pool:
            futures = {pool.submit(_load_or_compile, key): key for key in todo}
            for fut in concurrent.futures.as_completed(futures):
                try:
                    account(futures[fut], fut.result())
                except Exception as e:  # noqa: BLE001
                    account(futures[fut], error=e)
    print(f"precompile: {len(todo)} kernels ({compiled} compiled, {cached} already cached, {len(failures)} failed) "
          f"in {time.perf_counter() - start:.0f}s; cache {disk_cache.DiskCache().directory}")
    return compiled, cached, failures
