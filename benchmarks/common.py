"""Shared benchmark helpers: environment record, median timing, peers."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time


def git_commit() -> str:
    """HEAD's short hash, marked ``+modified`` when tracked files differ from it (a device machine's copy of the tree
    can carry a stale ``.git``: the mark says the hash does not name the measured code)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+modified" if head and changed else head


def environment() -> dict:
    import cutlass
    import torch

    gpu = {"gpu": "none (CPU)", "sm": "-", "sms": 0}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        gpu = {"gpu": p.name, "sm": f"{p.major}{p.minor}", "sms": p.multi_processor_count}
    commit = os.environ.get("CUTE_ATTENTION_COMMIT", "") or git_commit()
    return {
        **gpu,
        "torch": torch.__version__, "cuda": torch.version.cuda, "cutlass_dsl": cutlass.__version__,
        "python": platform.python_version(), "commit": commit or "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def bench_ms(fn, warmup: int = 25, rep: int = 100) -> float:
    """Median milliseconds of ``fn`` (CUDA events via triton's do_bench, L2 flushed between runs)."""
    from triton.testing import do_bench

    return do_bench(fn, warmup=warmup, rep=rep, return_mode="median")


def bench_interleaved(fns: dict, rounds: int = 5, warmup: int = 10, rep: int = 40, cooldown_s: float = 0.5) -> dict:
    """Time several callables in alternation: ``rounds`` rounds, each timing every callable once (median of
    ``do_bench``), the order rotated every round. Each timing starts after ``cooldown_s`` of idle GPU: on the
    H100 a kernel timed right after a power-hungry peer (cuDNN, FA4) ran up to 20% slower than the same
    kernel timed first, so every candidate is measured from the same rested state.

    Returns ``{name: {"ms": median over rounds, "ms_rounds": [...]}}``.
    """
    import statistics

    import torch

    names = list(fns)
    per = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:
            torch.cuda.synchronize()
            time.sleep(cooldown_s)
            per[n].append(bench_ms(fns[n], warmup=warmup, rep=rep))
    return {n: {"ms": statistics.median(v), "ms_rounds": v} for n, v in per.items()}


def graph_ms(fn, warmup: int = 20, rep: int = 100) -> float:
    """Median ms of a CUDA-graph replay of ``fn``: GPU time only, no host work per replay (``fn`` must be
    graph-capturable: no synchronization, allocations through torch's allocator)."""
    import torch

    fn()
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return bench_ms(g.replay, warmup=warmup, rep=rep)


def runnable_only(fns: dict, results: dict) -> dict:
    """Run each candidate once (warm-up, compile); keep those that ran, record why the others did not."""
    import torch

    ok = {}
    for name, fn in fns.items():
        try:
            fn()
            torch.cuda.synchronize()
            ok[name] = fn
        except Exception as e:  # noqa: BLE001 - a peer that cannot run this case is reported, not fatal
            results[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return ok


def host_us_per_call(fn, calls: int = 100, rounds: int = 20) -> float:
    """CPU µs per call on a tiny problem: median over rounds of ``calls`` launches, each round started on an
    idle GPU so the launch queue never fills and the GPU never sets the pace."""
    import statistics

    import torch

    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
    torch.cuda.synchronize()
    return statistics.median(per_call)


def sdpa_peers(causal: bool):
    """torch SDPA backends as callables on BSHD tensors (views transposed to BHSD, no copies)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def make(backend):
        def run(q, k, v):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(
                    q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal,
                    enable_gqa=q.shape[2] != k.shape[2])
        return run

    return {"sdpa_flash": make(SDPBackend.FLASH_ATTENTION), "sdpa_cudnn": make(SDPBackend.CUDNN_ATTENTION)}


def fa4_peer(causal: bool):
    try:
        from flash_attn.cute import flash_attn_func
    except Exception:  # noqa: BLE001 - FA4 not importable here: no peer
        return None

    def run(q, k, v):
        return flash_attn_func(q, k, v, causal=causal)

    return run


def write_json(path: str, payload: dict) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
