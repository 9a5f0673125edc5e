"""The command line (``cute-attention`` or ``python -m cute_attention``).

``catalog``: the main job. Compiles every registered variant (or the ones named, composed ones included) for a
target and reports registers, shared memory, spills, the SASS instruction mix and what each build's blocks
promised; with a GPU of that target it also checks each against the fp32 reference and times it. Exits 1 when a
build breaks a promise or fails its check, 2 on a usage error.

``precompile``: fills the on-disk compile cache for chosen targets, head dims, dtypes and features (no GPU needed).
``cache``: where the on-disk cache is and what it holds; ``cache --clear`` empties it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys


def _prog() -> str:
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m cute_attention" if base in ("__main__.py", "-m", "") else base


def _target(value: str) -> str:
    from cute_attention.core.targets import known_targets

    if value not in known_targets():
        raise argparse.ArgumentTypeError(f"unknown target {value!r}; known: {', '.join(known_targets())}")
    return value


def load_variants(spec: str) -> list:
    """A registered variant's name, or ``module:attr`` / ``path/to/file.py:attr`` naming a composed
    :class:`~cute_attention.Variant`, a sequence of them, or a :class:`~cute_attention.Registry`."""
    from cute_attention.host.registry import REGISTRY, Registry
    from cute_attention.kernels.variant import Variant

    if ":" not in spec:
        try:
            return [REGISTRY.get(spec)]
        except KeyError as e:
            raise ValueError(f"{e.args[0]}; or give module:attr / file.py:attr for a composed variant") from None
    where, attr = spec.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise ValueError(f"no file {where!r}")
        mod_spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(where))[0], where)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValueError(f"cannot import {where!r}: {e}") from None
    if not hasattr(module, attr):
        raise ValueError(f"{where} has no attribute {attr!r}")
    obj = getattr(module, attr)
    found = obj.variants() if isinstance(obj, Registry) else [obj] if isinstance(obj, Variant) else list(obj)
    if not found or not all(isinstance(v, Variant) for v in found):
        raise ValueError(f"{spec} is not a Variant, a sequence of Variants or a Registry")
    return found


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("cute-attention")
    except PackageNotFoundError:
        ours = "unknown (not installed)"
    try:
        dsl = version("nvidia-cutlass-dsl")
    except PackageNotFoundError:
        dsl = "not installed"
    return f"cute-attention {ours} (nvidia-cutlass-dsl {dsl})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_prog(), description="Attention kernels composed from CuTe DSL blocks.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="cmd", required=True)
    cat = sub.add_parser("catalog", help="compile every registered variant and report it (check + time on a GPU)")
    cat.add_argument("--target", type=_target, default=None,
                     help="compile target, e.g. sm_80 or sm_90a (default: the GPU's, else sm_80)")
    cat.add_argument("--dtype", default="bfloat16", choices=["float16", "bfloat16"])
    cat.add_argument("--variant", action="append", metavar="NAME|MODULE:ATTR|FILE.py:ATTR",
                     help="only these variants (repeatable): a registered name or a composed Variant")
    cat.add_argument("--no-gpu", action="store_true", help="compile and inspect only, even with a GPU")
    cat.add_argument("--json", default=None, help="write the full table as JSON")
    pre = sub.add_parser("precompile", help="compile kernels into the on-disk cache (no GPU needed)")
    pre.add_argument("--target", type=_target, nargs="+", default=None,
                     help="compile targets (default: the GPU's, else sm_80)")
    pre.add_argument("--config", nargs="+", default=None,
                     help="variant configs, e.g. sm80 (default: sm80; 'all' for every registered one)")
    pre.add_argument("--variant", action="append", metavar="NAME|MODULE:ATTR|FILE.py:ATTR",
                     help="only these variants (repeatable), instead of --config")
    pre.add_argument("--head-dim", type=int, nargs="+", default=None, help="head dims (default: each variant's)")
    pre.add_argument("--dtype", nargs="+", default=["float16", "bfloat16"], choices=["float16", "bfloat16"])
    pre.add_argument("--mask", nargs="+", default=["none", "causal"], choices=["none", "causal", "window", "left"],
                     help="none; causal (right 0); window (left and right); left (left only)")
    pre.add_argument("--lse", default="both", choices=["no", "yes", "both"], help="builds without / with LSE")
    pre.add_argument("--kv", nargs="+", default=["linear"], metavar="LAYOUT",
                     help="linear (attention), seqlens (contiguous cache), paged16..paged256 (paged cache)")
    pre.add_argument("--no-split", action="store_true", help="skip the split-K builds and reduction kernels")
    pre.add_argument("--append", action="store_true", help="also the KV append kernels of the cache layouts")
    pre.add_argument("--varlen", action="store_true", help="also the varlen (ragged) builds of the linear layout")
    pre.add_argument("--kv-quant", nargs="+", default=[], metavar="FORMAT",
                     help="also the quantized-cache builds of the cache layouts: int8, int4, fp8 (int8_f32, "
                          "int4_f32, ...: (scale, zero) pairs of that dtype instead of the call's)")
    pre.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiler processes")
    cache = sub.add_parser("cache", help="show (or --clear) the on-disk compile cache")
    cache.add_argument("--clear", action="store_true", help="remove every entry (of every fingerprint)")
    args = parser.parse_args(argv)
    if args.cmd == "precompile":
        return _precompile(parser, args)
    if args.cmd == "cache":
        return _cache(args)

    from cute_attention.host.launcher import default_target
    from cute_attention.tools import catalog

    variants = None
    if args.variant:
        try:
            variants = [v for spec in args.variant for v in load_variants(spec)]
        except ValueError as e:
            parser.error(f"--variant: {e}")
    target = args.target or default_target()
    gpu = False
    if not args.no_gpu:
        import torch

        gpu = torch.cuda.is_available() and default_target() == target
    mode = "checking and timing on the GPU" if gpu else "compile only"
    print(f"catalog: target {target}, dtype {args.dtype}, {mode}")
    entries = catalog.run(target, args.dtype, gpu=gpu, json_path=args.json, variants=variants)
    broken = [e for e in entries if e.sass_violations]
    failed = [e for e in entries if e.passed is False]
    for e in broken:
        print(f"BROKEN PROMISE {e.variant} d={e.head_dim}: {'; '.join(e.sass_violations)}")
    for e in failed:
        print(f"FAILED CHECK {e.variant} d={e.head_dim}: max error {e.max_abs_err}")
    return 1 if broken or failed else 0


def _variants(parser, args) -> list:
    from cute_attention.host.registry import DEFAULT_CONFIG, REGISTRY

    if args.variant:
        try:
            return [v for spec in args.variant for v in load_variants(spec)]
        except ValueError as e:
            parser.error(f"--variant: {e}")
    configs = args.config or [DEFAULT_CONFIG]
    if "all" in configs:
        configs = REGISTRY.configs()
    unknown = [c for c in configs if c not in REGISTRY.configs()]
    if unknown:
        parser.error(f"--config: unknown {unknown}; known: {REGISTRY.configs()}")
    return [v for v in REGISTRY.variants() if v.config in configs]


def _precompile(parser, args) -> int:
    from cute_attention.tools import precompile

    variants = _variants(parser, args)
    for name in args.kv_quant:
        try:
            precompile.kv_quant(name, "bfloat16")
        except ValueError as e:
            parser.error(f"--kv-quant: {e}")
    for layout in args.kv:
        try:
            precompile.kv_cache(layout)
        except ValueError as e:
            parser.error(f"--kv: {e}")
    if args.target is None:
        from cute_attention.host.launcher import default_target

        args.target = [default_target()]
    sel = precompile.Selection(
        targets=tuple(args.target), variants=tuple(variants),
        head_dims=tuple(args.head_dim) if args.head_dim else None, dtypes=tuple(args.dtype),
        masks=tuple(args.mask), lse={"no": (False,), "yes": (True,), "both": (False, True)}[args.lse],
        kv=tuple(args.kv), split=not args.no_split, append=args.append,
        varlen=args.varlen, kv_quant=tuple(args.kv_quant))
    try:
        _, _, failures = precompile.run(sel, jobs=max(1, args.jobs))
    except RuntimeError as e:
        print(f"precompile: {e}", file=sys.stderr)
        return 2
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


def _cache(args) -> int:
    import shutil

    from cute_attention.host import disk_cache

    base = disk_cache.root()
    if args.clear:
        removed = disk_cache.fingerprint_dirs(base)
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        print(f"cache: removed {len(removed)} fingerprint director{'y' if len(removed) == 1 else 'ies'} under {base}")
        return 0
    here = base / disk_cache.fingerprint()
    entries = sorted(here.glob("*.json")) if here.is_dir() else []
    size = sum(p.stat().st_size for p in here.iterdir()) if here.is_dir() else 0
    others = [p for p in disk_cache.fingerprint_dirs(base) if p != here]
    state = "on" if disk_cache.enabled() else "off (CUTE_ATTENTION_CACHE=0)"
    print(f"cache: {state}; {here}: {len(entries)} kernels, {size / 2**20:.1f} MiB; "
          f"{len(others)} other fingerprint(s) under {base}")
    return 0
