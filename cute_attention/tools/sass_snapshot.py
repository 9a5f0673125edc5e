"""SASS snapshots: a fingerprint of every build's instruction stream, to show that a change left the generated code
alone (or exactly where it did not).

A snapshot compiles a fixed list of builds for one target (the catalogue, other dtypes and masks, split-K, paged,
PackGQA and lookahead compositions, the reduction and the append kernels) and records, per build, the SHA-256 of
its instructions with the kernel's symbol name blanked (the name spells the module path and argument types, which a
rename changes without changing the code), its instruction count, registers, launch shared memory and threads.

    python -m cute_attention.tools.sass_snapshot --target sm_90a --json after.json
    python -m cute_attention.tools.sass_snapshot --compare before.json after.json   # exit 1 on any difference
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import time

from cute_attention.core.masks import MaskSpec
from cute_attention.host import registry as R
from cute_attention.host.compile_cache import CACHE, CompileKey
from cute_attention.host.cubin import register_counts
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.kv_append import AppendParams
from cute_attention.kernels.split_reduce import ReduceParams
from cute_attention.kv import LinearKVCache, PagedKVCache
from cute_attention.tools.catalog import catalog_keys
from cute_attention.tools.sass import INSN_TEXT, disassemble

_SYMBOL = re.compile(r"kernel_cutlass_\w+")

# (variant, dtype, head dim, mask, LSE) beyond the catalogue's bf16 causal + LSE builds
EXTRA_BUILDS = [
    (R.SM80_M128N64_S4L, "float16", 128, MaskSpec(False, False), False),
    (R.SM80_M128N64_S4L, "bfloat16", 64, MaskSpec(True, True), True),
    (R.SM80_M128N32_W8, "float16", 256, MaskSpec(True, False), True),
    (R.SM80_M64N64, "float16", 192, MaskSpec(True, False), False),
    (R.SM75_M64N64, "float16", 128, MaskSpec(False, False), False),
    (R.SM75_M64N32, "float16", 256, MaskSpec(True, True), True),
    (R.SM70_M64N64, "float16", 64, MaskSpec(False, False), False),
    (R.SIMT_M64N64, "float16", 128, MaskSpec(True, False), True),
    (R.SIMT_M128N32, "float16", 192, MaskSpec(False, False), False),
]
# (variant, KV cache layout, split-K) at bf16, d128, causal + LSE
COMPOSED_BUILDS = [
    (R.SM80_M128N64_S4L, LinearKVCache(), True), (R.SM80_M128N64_S4L, PagedKVCache(16), False),
    (R.SM80_M128N64_S4L, PagedKVCache(64), True), (R.SM75_M64N64, PagedKVCache(256), True),
    (R.SIMT_M64N64, LinearKVCache(seqlens=True), True), (R.SM80_M16N64_W1X4_PACK, PagedKVCache(16), True),
    (R.SM80_M16N64_W1X4_PACK, PagedKVCache(128), False), (R.SM80_M64N64_WS2_PACK, PagedKVCache(32), True),
    (R.SIMT_M8N64_W1X4_PACK, PagedKVCache(64), True), (R.SIMT_M8N64_W1X4_PACK, LinearKVCache(seqlens=True), False),
    (R.SM80_M16N64_W1X4_PACK_LA, PagedKVCache(64), True), (R.SM80_M16N64_W1X4_PACK_LA, PagedKVCache(16), True),
    (R.SM80_M16N64_W1X4_PACK, PagedKVCache(64), False), (R.SM80_M16N64_W1X4_PACK, PagedKVCache(64), True),
    (R.SM80_M16N64_W1X4_PACK_LA, PagedKVCache(64), False),
]


def instructions(sass: str) -> list[str]:
    """The instruction text of a disassembly, kernel symbol names blanked."""
    return [_SYMBOL.sub("SYM", m.group(1)) for line in sass.splitlines() if (m := INSN_TEXT.search(line))]


def layout_id(cache) -> str:
    """A K/V layout's part of a build id: ``paged<block size>``, ``linear_lens`` (with lengths) or ``linear``."""
    return f"paged{cache.block_size}" if cache.paged else "linear_lens" if cache.seqlens else "linear"


def build_id(key: CompileKey) -> str:
    p, t = key.params, key.target
    if isinstance(p, ReduceParams):
        return f"reduce|{p.dtype}|{p.head_dim}|lse{int(p.with_lse)}|{t}"
    if isinstance(p, AppendParams):
        return f"append|{p.dtype}|{p.head_dim}|bs{p.block_size}|{t}"
    return (f"attn|{p.variant.name}|{layout_id(p.variant.kv_cache)}|{p.dtype}|{p.head_dim}"
            f"|L{int(p.mask.has_left)}R{int(p.mask.has_right)}|lse{int(p.with_lse)}|split{int(p.split_kv)}|{t}")


def snapshot_keys(target: str) -> list[CompileKey]:
    keys = list(catalog_keys(target))
    keys += [CompileKey.of(AttentionParams(*b), target) for b in EXTRA_BUILDS]
    keys += [CompileKey.of(AttentionParams(dataclasses.replace(v, kv_cache=c), "bfloat16", 128, MaskSpec(False, True),
                                           True, split), target) for v, c, split in COMPOSED_BUILDS]
    keys += [CompileKey.of(ReduceParams("bfloat16", d, lse), target) for d in (64, 96, 128, 192, 256)
             for lse in (False, True)]
    keys += [CompileKey.of(AppendParams(dt, 128, bs), target) for bs in (0, 16, 64, 256)
             for dt in ("bfloat16", "float16")]
    unique = {}
    for k in keys:
        unique.setdefault(build_id(k), k)
    return list(unique.values())


def snapshot(target: str, progress: bool = True) -> dict:
    out = {}
    start = time.perf_counter()
    for key in snapshot_keys(target):
        compiled = CACHE.get(key)
        ins = instructions(disassemble(compiled.cubin))
        out[build_id(key)] = dict(sha=hashlib.sha256("\n".join(ins).encode()).hexdigest(), n=len(ins),
                                  regs=max(register_counts(compiled.cubin)), smem=compiled.smem_bytes,
                                  threads=compiled.threads)
        if progress:
            print(f"  {build_id(key)}: {len(ins)} instructions ({time.perf_counter() - start:.0f}s)", flush=True)
    return out


def compare(before: dict, after: dict) -> list[str]:
    """One line per build that is missing on a side or differs in any recorded field."""
    lines = []
    for k in sorted(set(before) | set(after)):
        if k not in before or k not in after:
            lines.append(f"{k}: only {'after' if k in after else 'before'}")
            continue
        diff = {f: (before[k][f], after[k][f]) for f in before[k] if f in after[k] and before[k][f] != after[k][f]}
        if diff:
            lines.append(f"{k}: {diff}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cute_attention.tools.sass_snapshot",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--target", help="compile target of a new snapshot (sm_80, sm_90a, ...)")
    ap.add_argument("--json", help="where to write the new snapshot")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two snapshot files")
    args = ap.parse_args(argv)
    if args.compare:
        before, after = (json.load(open(p)) for p in args.compare)
        lines = compare(before, after)
        print("\n".join(lines) if lines else f"{len(before)} builds, all identical")
        return 1 if lines else 0
    if not args.target or not args.json:
        ap.error("give --target and --json for a snapshot, or --compare BEFORE AFTER")
    with open(args.json, "w") as f:
        json.dump(snapshot(args.target), f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
