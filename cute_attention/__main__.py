"""``python -m cute_attention catalog --target sm_80``: the main job (see README)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cute_attention")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cat = sub.add_parser("catalog", help="compile every registered variant and report it (check + time on a GPU)")
    cat.add_argument("--target", default=None, help="sm_80 or sm_90a (default: the GPU's, else sm_80)")
    cat.add_argument("--dtype", default="bfloat16", choices=["float16", "bfloat16"])
    cat.add_argument("--variant", action="append", help="only these variant names (repeatable)")
    cat.add_argument("--no-gpu", action="store_true", help="compile and inspect only, even with a GPU")
    cat.add_argument("--json", default=None, help="write the full table as JSON")
    args = parser.parse_args(argv)

    from cute_attention import catalog
    from cute_attention.compile_cache import default_target
    from cute_attention.registry import REGISTRY

    target = args.target or default_target()
    gpu = False
    if not args.no_gpu:
        import torch

        gpu = torch.cuda.is_available() and default_target() == target
    variants = [REGISTRY.get(n) for n in args.variant] if args.variant else None
    mode = "checking and timing on the GPU" if gpu else "compile only"
    print(f"catalog: target {target}, dtype {args.dtype}, {mode}")
    entries = catalog.run(target, args.dtype, gpu=gpu, json_path=args.json, variants=variants)
    failed = [e for e in entries if e.passed is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
