"""The command line (``cute-attention`` or ``python -m cute_attention``).

``catalog``: the main job. Compiles every registered variant (or the ones named, composed ones included) for a
target and reports registers, shared memory, spills, the SASS instruction mix and what each build's blocks
promised; with a GPU of that target it also checks each against the fp32 reference and times it. Exits 1 when a
build breaks a promise or fails its check, 2 on a usage error.
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
    args = parser.parse_args(argv)

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
