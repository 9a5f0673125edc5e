"""Cold start with a warm on-disk compile cache: how long a new process takes to have its kernels ready.

Fills a cache directory with the kernels of a few typical calls (prefill d64/d128/d256, causal with LSE, a split-K
build and its reduction, the paged decode tile and its append), then starts fresh processes that only load them and
reports: the import, the first load (which also loads the DSL's runtime libraries once), and each further kernel's
load (median). With a GPU it also times a fresh process's first ``attention`` call (load + launch + synchronize)
with the warm cache and with the cache off (compiling).

    python benchmarks/cold_start.py --target sm_80 --json out.json [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import environment, write_json  # noqa: E402

CHILD_LOAD = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
from cute_attention.host.compile_cache import CACHE
from cute_attention.tools.precompile import keys
sys.path.insert(0, sys.argv[2])
from cold_start import selection
t1 = time.perf_counter()
import ctypes
from cutlass.cute.runtime import find_runtime_libraries, load_module
for lib in find_runtime_libraries(enable_tvm_ffi=True):
    ctypes.CDLL(lib)
t2 = time.perf_counter()
ks = list(keys(selection(sys.argv[1])))
times = []
for k in ks:
    t = time.perf_counter()
    entry = CACHE.get(k)
    times.append(time.perf_counter() - t)
    assert entry.from_disk, k
print(json.dumps({"import_s": t1 - t0, "runtime_libraries_s": t2 - t1, "first_load_ms": times[0] * 1e3,
                  "kernels": len(ks),
                  "load_ms_median": statistics.median(times[1:]) * 1e3, "load_ms_max": max(times[1:]) * 1e3}))
"""

CHILD_CALL = r"""
import json, time
t0 = time.perf_counter()
import torch
from cute_attention import attention
q, k, v = (torch.randn(2, 1024, 16, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
torch.cuda.synchronize()
t1 = time.perf_counter()
attention(q, k, v, causal=True, return_lse=True)
torch.cuda.synchronize()
t2 = time.perf_counter()
print(json.dumps({"import_and_inputs_s": t1 - t0, "first_call_s": t2 - t1}))
"""


def selection(target: str):
    from cute_attention.host.registry import SM80_M16N64_W1X4_PACK_LA, SM80_M64N64, SM80_M128N64, SM80_M128N64_S4L
    from cute_attention.tools.precompile import Selection

    return [
        Selection((target,), (SM80_M128N64,), (64,), ("bfloat16",), ("causal",), (True,), ("linear",), False),
        Selection((target,), (SM80_M128N64_S4L,), (128,), ("bfloat16",), ("causal",), (True,), ("linear",), True),
        Selection((target,), (SM80_M64N64,), (256,), ("bfloat16",), ("causal",), (True,), ("linear",), False),
        Selection((target,), (SM80_M16N64_W1X4_PACK_LA,), (128,), ("bfloat16",), ("causal",), (False,),
                  ("paged64",), True, True),
    ]


def _child(code: str, env: dict, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default=None)
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temporary directory")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from cute_attention.host.launcher import default_target
    from cute_attention.tools import precompile

    target = args.target or default_target()
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="cute-attention-cold-")
    os.environ["CUTE_ATTENTION_CACHE_DIR"] = cache_dir
    for sel in selection(target):
        precompile.run(sel, jobs=os.cpu_count() or 1)
    env = dict(os.environ, CUTE_ATTENTION_CACHE_DIR=cache_dir)
    here = os.path.dirname(os.path.abspath(__file__))
    loads = [_child(CHILD_LOAD.replace("keys(selection(sys.argv[1]))",
                                      "[k for s in selection(sys.argv[1]) for k in keys(s)]"), env, target, here)
             for _ in range(3)]
    result = {"env": environment(), "target": target, "warm_loads": loads}
    import torch

    if torch.cuda.is_available() and target == default_target():
        result["first_call_warm"] = _child(CHILD_CALL, env)
        result["first_call_cache_off"] = _child(CHILD_CALL, dict(env, CUTE_ATTENTION_CACHE="0"))
    if args.json:
        write_json(args.json, result)
    best = min(loads, key=lambda r: r["first_load_ms"])
    print(f"cold start ({target}, {best['kernels']} kernels, warm cache): import {best['import_s']:.2f} s, DSL runtime "
          f"libraries {best['runtime_libraries_s']:.2f} s (once), first kernel {best['first_load_ms']:.0f} ms, then "
          f"{best['load_ms_median']:.1f} ms per kernel (max {best['load_ms_max']:.1f})")
    for name in ("first_call_warm", "first_call_cache_off"):
        if name in result:
            print(f"{name}: {result[name]['first_call_s'] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
