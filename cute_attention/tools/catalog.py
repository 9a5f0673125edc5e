"""The kernel catalogue: compile every registered variant for a target and report what the compiler made.

Without a GPU this is the CPU-side check of the whole library (registers, shared memory, spills,
key SASS instructions, compile time). With a GPU of the target's generation it can also check each
entry against the fp32 reference and time it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from cute_attention.core.masks import MaskSpec
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.registry import REGISTRY
from cute_attention.kernels.attention import AttentionParams
from cute_attention.tools.progress import Progress
from cute_attention.tools.sass import inspect_cubin

SASS_COLUMNS = ("HMMA", "HGMMA", "FFMA", "LDGSTS", "LDSM", "LDS", "LDG", "STS", "LDL", "STL")


@dataclass
class CatalogEntry:
    variant: str
    description: str
    target: str
    dtype: str
    head_dim: int
    registers: int | None
    cubin_sm: int | None  # the SM the cubin's code is for, read from its ELF header
    smem_bytes: int
    threads: int
    spills: int
    compile_seconds: float
    sass: dict = field(default_factory=dict)
    mma_forms: list = field(default_factory=list)
    sass_violations: list = field(default_factory=list)  # promises of the blocks (and spill budget) the SASS breaks
    compile_warnings: list = field(default_factory=list)  # what the DSL warned about while compiling
    max_abs_err: float | None = None
    passed: bool | None = None
    ms: float | None = None
    tflops: float | None = None


def catalog_keys(target: str, dtype: str = "bfloat16", variants=None):
    """One representative compile per (variant, head dim): causal mask and LSE on (the fullest kernel)."""
    for v in variants or REGISTRY.variants():
        if v.targets is not None and target not in v.targets:
            continue
        for d in v.head_dims:
            dt = dtype if dtype in v.dtypes else v.dtypes[0]
            yield CompileKey.of(AttentionParams(v, dt, d, MaskSpec(has_left=False, has_right=True), True), target)


def promise_violations(key: CompileKey, stats) -> list[str]:
    """What the SASS breaks of what its blocks promise: the Impl's MMA form and ldmatrix loads, the
    mainloop's copy instructions (e.g. LDGSTS for cp.async; 128-bit LDG/STS and no LDGSTS for Sm70)."""
    variant = key.params.variant
    impl = key.params.build(key.target).impl
    out = []
    forms = stats.variants("HMMA") + stats.variants("HGMMA")
    if impl.mma_sass is not None and (not forms or any(not f.startswith(impl.mma_sass) for f in forms)):
        out.append(f"MMA forms {forms}, promised {impl.mma_sass}")
    if stats.count("HGMMA") and "HGMMA" not in impl.sass_required:
        out.append("HGMMA present")
    for op in (*impl.sass_required, *variant.mainloop.sass_required):
        if stats.count(op) == 0:
            out.append(f"no {op}")
    for op in (*impl.sass_forbidden, *variant.mainloop.sass_forbidden):
        if stats.count(op):
            out.append(f"{stats.count(op)} {op}")
    return out


def sass_violations(key: CompileKey, stats) -> list[str]:
    """:func:`promise_violations`, and the variant's budgets: spills within ``spill_budget`` (0 unless a
    measurement chose the spilling build), at most 255 registers."""
    out = promise_violations(key, stats)
    budget = key.params.variant.spill_budget
    if stats.spills > budget:
        out.append(f"{stats.spills} LDL/STL over the spill budget {budget}")
    if stats.registers is None or stats.registers > 255:
        out.append(f"registers {stats.registers}")
    return out


def compile_entry(key: CompileKey) -> tuple[CatalogEntry, object]:
    """Compile ``key`` (or load it from the on-disk cache, which keeps its compile time and warnings) and inspect
    its SASS."""
    compiled = CACHE.get(key)
    stats = inspect_cubin(compiled.cubin)
    params = key.params
    entry = CatalogEntry(
        variant=params.variant.name,
        description=params.variant.describe(),
        target=key.target,
        dtype=params.dtype,
        head_dim=params.head_dim,
        registers=stats.registers,
        cubin_sm=stats.sm,
        smem_bytes=compiled.smem_bytes,
        threads=compiled.threads,
        spills=stats.spills,
        compile_seconds=round(compiled.compile_seconds, 2),
        sass={op: stats.count(op) for op in SASS_COLUMNS},
        mma_forms=stats.variants("HMMA") + stats.variants("HGMMA"),
        sass_violations=sass_violations(key, stats),
        compile_warnings=list(compiled.warnings),
    )
    return entry, compiled


def check_and_time(entry: CatalogEntry, key: CompileKey, seqlen: int = 4096, batch: int = 4, nheads: int = 16):
    """On a GPU: compare with the fp32 reference on a causal problem, then time it."""
    import torch

    from cute_attention.api.attention import attention
    from cute_attention.tools.reference import tolerance_check

    try:
        from triton.testing import do_bench
    except ImportError as e:
        raise RuntimeError("timing the catalogue on a GPU needs triton: pip install 'cute-attention[bench]'") from e
    params = key.params
    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16}[params.dtype]
    g = torch.Generator(device="cuda").manual_seed(0)
    shape = (batch, seqlen, nheads, params.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=dt, generator=g) for _ in range(3))
    out = attention(q, k, v, causal=True, variant=params.variant)
    ok, err, _ = tolerance_check(out, q, k, v, causal=True)
    entry.passed, entry.max_abs_err = ok, err
    ms = do_bench(lambda: attention(q, k, v, causal=True, variant=params.variant), warmup=50, rep=200,
                  return_mode="median")
    entry.ms = ms
    entry.tflops = 4 * batch * nheads * seqlen * seqlen * params.head_dim / 2 / (ms * 1e-3) / 1e12


def format_table(entries: list[CatalogEntry]) -> str:
    cols = ["variant", "target", "dtype", "d", "regs", "smem KB", "spills", *SASS_COLUMNS, "promised", "compile s"]
    has_gpu = any(e.passed is not None for e in entries)
    if has_gpu:
        cols += ["check", "ms", "TFLOP/s"]
    rows = []
    for e in entries:
        row = [e.variant, e.target, e.dtype, e.head_dim, e.registers, round(e.smem_bytes / 1024, 1), e.spills,
               *[e.sass.get(op, 0) for op in SASS_COLUMNS],
               "ok" if not e.sass_violations else "; ".join(e.sass_violations), e.compile_seconds]
        if has_gpu:
            row += ["ok" if e.passed else "FAIL", f"{e.ms:.3f}" if e.ms else "-",
                    f"{e.tflops:.0f}" if e.tflops else "-"]
        rows.append([str(c) for c in row])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def run(target: str, dtype: str = "bfloat16", gpu: bool = False, json_path: str | None = None,
        variants=None) -> list[CatalogEntry]:
    entries = []
    start = time.perf_counter()
    keys = list(catalog_keys(target, dtype, variants))
    progress = Progress(len(keys), "catalog")
    for key in keys:
        entry, compiled = compile_entry(key)
        if gpu:
            check_and_time(entry, key)
        entries.append(entry)
        progress.step(f"{entry.variant} d={entry.head_dim}" + (" (cached)" if compiled.from_disk else ""))
    print(format_table(entries))
    print(f"{len(entries)} kernels in {time.perf_counter() - start:.0f}s")
    if json_path:
        with open(json_path, "w") as f:
            json.dump([asdict(e) for e in entries], f, indent=1)
    return entries
