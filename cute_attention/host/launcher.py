"""Host launcher (TurboMind's ``invokeAttention``): compile-cache lookup, split count, launch on the current stream.

A launch passes a kernel's parameter record's ``launch_args`` to the compiled function; shared-memory size, grid
and block come from the kernel object (its ``__call__`` builds them from its storage and the tensors' shapes);
the launch goes to ``torch.cuda.current_stream()`` of the tensors' device through TVM-FFI's environment stream.
With split-K the split count comes from the compiled kernel's occupancy and the SM count
(:func:`choose_splits`), and the reduction kernel runs after the attention kernel on the same stream.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import torch

from cute_attention.core.index_math import num_splits_heuristic
from cute_attention.host.compile_cache import CACHE, CompiledKernel, CompileKey, KernelParams
from cute_attention.kernels.attention import AttentionParams
from cute_attention.kernels.cta_map import query_grid
from cute_attention.kernels.split_reduce import ReduceParams

MAX_SPLITS = 128
PREFILL_WAVE_CAP = 8  # TurboMind's cap on the waves a split count may add to a prefill grid
# The warp-specialized kernels hold one CTA per SM, and each split CTA pays Q's load and the epilogue again. At b1 h32
# sq128 sk128k d128 on the H200 (benchmarks/results/h200/splitk_counts_8c2f92a.txt) one wave of splits (4: 128 CTAs)
# ran at 530 TFLOP/s, 2 waves (8) at 516, the 8-wave cap's choice (33) at 468.
WS_PREFILL_WAVE_CAP = 1
# Decode: TurboMind caps at 4 waves over the full occupancy. Here decode reads K/V at full bandwidth with two
# resident CTAs per SM, and every split past one wave of those only adds partial-O traffic and reduction work:
# in the H100 sweep (benchmarks/results/h100/sweep_decode.json) the fastest split counts were exactly the
# cost model's choice with occupancy capped at 2 CTAs per SM and a 1-wave cap (b1: 33, b2: 16, b4: 8, b64: 1).
DECODE_WAVE_CAP = 1
DECODE_CTAS_PER_SM = 2


def default_target() -> str:
    """``sm_90a`` on Hopper, ``sm_XY`` on other GPUs, ``sm_80`` without a usable GPU; ``CUTE_ATTENTION_TARGET``
    overrides."""
    env = os.environ.get("CUTE_ATTENTION_TARGET")
    if env:
        return env
    try:
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return "sm_90a" if (major, minor) == (9, 0) else f"sm_{major}{minor}"
    except Exception:  # noqa: BLE001 - no usable CUDA runtime: compile for the baseline target
        pass
    return "sm_80"


@functools.cache
def target() -> str:
    return default_target()


def compiled(params: KernelParams) -> CompiledKernel:
    """The compiled kernel of ``params`` for this process's target (compiled on first use)."""
    return CACHE.get(CompileKey.of(params, target()))


def launch(kernel: CompiledKernel, device, args: tuple) -> None:
    """Call a compiled kernel with its record's ``launch_args`` on ``device``'s current stream."""
    if device.index != torch.cuda.current_device():
        with torch.cuda.device(device):
            kernel.fn(*args)
    else:
        kernel.fn(*args)


NO_KV_QUANT = (None, None, None, None)


def launch_split(kernel: CompiledKernel, params: AttentionParams, reduce: CompiledKernel, q, k, v, out, lse,
                 block_table=None, seqlens_k=None, varlen=None, kv_quant=NO_KV_QUANT) -> None:
    """Split-K: the attention kernel writes fp32 partial O and LSE per split, the reduction kernel merges
    them into ``out`` (and ``lse`` if given). A varlen batch (``q`` ``(1, total_q, h, d)``) reduces as one
    sequence of ``total_q`` rows."""
    b, sq, h, d = q.shape
    o_part = torch.empty((params.num_splits, b, sq, h, d), dtype=torch.float32, device=q.device)
    lse_part = torch.empty((params.num_splits, b, h, sq), dtype=torch.float32, device=q.device)
    launch(kernel, q.device, params.launch_args(q, k, v, o_part, lse_part, block_table, seqlens_k, varlen,
                                                sm_count(q.device.index) if params.persistent else None, kv_quant))
    launch(reduce, out.device, ReduceParams.launch_args(o_part, lse_part, out, lse))


def run(kernel: CompiledKernel, params: AttentionParams, reduce: CompiledKernel | None, q, k, v, out, lse_shape,
        block_table=None, seqlens_k=None, varlen=None, kv_quant=NO_KV_QUANT):
    """One attention call: the LSE tensor when ``lse_shape`` asks for it, then one pass (``reduce`` None) or
    split-K and the reduction. ``varlen``: ``(cu_seqlens_q, cu_seqlens_k, max_seqlen_q)`` of a ragged batch;
    ``kv_quant``: a quantized cache's (k params, v params, k descale, v descale). Returns ``out`` or ``(out, lse)``."""
    lse = None if lse_shape is None else torch.empty(lse_shape, dtype=torch.float32, device=q.device)
    if reduce is None:
        launch(kernel, q.device, params.launch_args(q, k, v, out, lse, block_table, seqlens_k, varlen,
                                                    sm_count(q.device.index) if params.persistent else None,
                                                    kv_quant))
    else:
        launch_split(kernel, params, reduce, q, k, v, out, lse, block_table, seqlens_k, varlen, kv_quant)
    return out if lse is None else (out, lse)


@functools.cache
def sm_count(device_index: int) -> int:
    """SMs of a device: the CTAs of a persistent kernel's launch."""
    return torch.cuda.get_device_properties(device_index).multi_processor_count


@functools.cache
def _sm_limits(device_index: int) -> tuple[int, int, int, int]:
    p = torch.cuda.get_device_properties(device_index)
    return (p.multi_processor_count, getattr(p, "regs_per_multiprocessor", 65536),
            getattr(p, "max_threads_per_multi_processor", 2048),
            getattr(p, "shared_memory_per_multiprocessor", 228 * 1024))


def ctas_per_sm(kernel: CompiledKernel, regs_per_sm: int, threads_per_sm: int, smem_per_sm: int) -> int:
    """Resident CTAs of ``kernel`` per SM, from its register count (cubin), threads and shared memory."""
    warps = kernel.threads // 32
    warp_regs = math.ceil(kernel.registers * 32 / 256) * 256  # allocation granularity: 256 registers per warp
    by_regs = (regs_per_sm // warp_regs) // warps
    by_threads = threads_per_sm // kernel.threads
    by_smem = smem_per_sm // (kernel.smem_bytes + 1024) if kernel.smem_bytes else 32  # 1 KiB reserved per CTA
    return max(1, min(by_regs, by_threads, by_smem, 32))


def unsplit_ctas(variant, batch: int, seqlen_q: int, nheads: int, nheads_kv: int) -> int:
    """CTAs of the kernel's grid without split-K (the same function as its launch, on host ints)."""
    q_tiles, grid_heads = query_grid(seqlen_q, nheads, nheads_kv, variant.impl.tile_m, variant.pack_gqa)
    return q_tiles * grid_heads * batch


def prefill_wave_cap(variant) -> int:
    """The waves a split count may give a prefill grid: one for the warp-specialized (one CTA per SM) kernels."""
    return WS_PREFILL_WAVE_CAP if variant.mainloop.warp_specialized else PREFILL_WAVE_CAP


def choose_splits(kernel: CompiledKernel, ctas: int, kv_tiles: int, device_index: int, wave_cap: int,
                  occupancy_cap: int | None = None) -> int:
    """``num_splits=0``: TurboMind's cost model over the split kernel's occupancy (at most ``occupancy_cap``
    CTAs per SM when given) and the SM count."""
    sms, regs, threads, smem = _sm_limits(device_index)
    occupancy = ctas_per_sm(kernel, regs, threads, smem)
    if occupancy_cap is not None:
        occupancy = min(occupancy, occupancy_cap)
    return num_splits_heuristic(ctas, sms, occupancy, max(1, min(MAX_SPLITS, kv_tiles)), wave_cap)



def split_plan(params: AttentionParams, num_splits: int, ctas: int, kv_tiles: int, device_index: int, wave_cap: int,
               occupancy_cap: int | None = None, max_splits: int = MAX_SPLITS):
    """``(kernel, params, reduce)`` of one call for ``num_splits`` (0: :func:`choose_splits` over the split build's
    occupancy; at most ``max_splits``): the one-pass kernel and no reduction when the count comes to 1, else the
    split build with its count and the reduction kernel (writing the LSE when ``params`` does)."""
    if num_splits != 1:
        split = dataclasses.replace(params, with_lse=True, split_kv=True)
        if num_splits == 0:
            num_splits = choose_splits(compiled(split), ctas, kv_tiles, device_index, wave_cap, occupancy_cap)
        num_splits = min(num_splits, max_splits)
        if num_splits > 1:
            split = dataclasses.replace(split, num_splits=num_splits)
            return compiled(split), split, compiled(ReduceParams(params.dtype, params.head_dim, params.with_lse))
    return compiled(params), params, None
