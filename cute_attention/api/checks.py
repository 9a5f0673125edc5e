"""Checks and per-signature plans shared by the torch entry points.

Every check runs before any launch and raises ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong shape,
device, value) naming the argument; nothing is written on error. A call's validation depends only on its
signature (:func:`call_signature`: shapes, strides, dtypes, devices, options), so each entry point validates a
signature once and keeps the resulting launch plan (:class:`PlanCache`); per call only pointer alignment is
checked.
"""

from __future__ import annotations

import math

import torch

from cute_attention.host import launcher
from cute_attention.host.registry import DEFAULT_CONFIG, REGISTRY, AttnDesc, default_configs
from cute_attention.kernels.abi import STRIDE_DIVISIBILITY
from cute_attention.kernels.variant import ALL_HEAD_DIMS, Variant

TORCH_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16"}
MAX_GRID_YZ = 65535


class PlanCache:
    """Validated launch plans by call signature (see :func:`call_signature`), at most ``limit`` of them."""

    def __init__(self, limit: int = 4096):
        self._plans: dict = {}
        self.limit = limit

    def get(self, sig):
        return None if sig is None else self._plans.get(sig)

    def put(self, sig, plan) -> None:
        if sig is not None and len(self._plans) < self.limit:
            self._plans[sig] = plan


def call_signature(tensors: tuple, options: tuple):
    """Everything validation looks at, without tensor data: each tensor's shape, strides, dtype and device and
    each option with its type (``1 == True`` must not pass for a bool), a pair's element types too. None when an
    argument is neither a tensor nor None, or an option is unhashable (a list window, say): validate every time."""
    parts = []
    for t in tensors:
        if t is None:
            parts.append(None)
        elif type(t) is torch.Tensor:
            parts.append((t.shape, t.stride(), t.dtype, t.device))
        else:
            return None
    for o in options:
        parts.append(o)
        parts.append(type(o))
        if type(o) is tuple:
            parts.extend(type(x) for x in o)
    sig = tuple(parts)
    try:
        hash(sig)
    except TypeError:
        return None
    return sig



def check_no_grad(*named) -> None:
    """The library is forward-only: with grad mode on, an input that requires grad would silently lose its
    gradient, so the call raises instead (wrap inference in ``torch.no_grad()`` / ``torch.inference_mode()``, or
    ``detach()`` the inputs)."""
    if torch.is_grad_enabled():
        wanting = [name for name, t in named if getattr(t, "requires_grad", False)]
        if wanting:
            raise RuntimeError(
                f"cute_attention is forward-only (no backward yet), but {', '.join(wanting)} "
                f"require{'s' if len(wanting) == 1 else ''} grad with grad mode on; call it under torch.no_grad() or "
                f"torch.inference_mode(), or detach() the inputs")


def strides_ok(t: torch.Tensor) -> bool:
    """The stride part of the layout compiled kernels assume (see :mod:`cute_attention.host.compile_cache`)."""
    if t.stride(-1) != 1:
        return False
    return all(s % STRIDE_DIVISIBILITY == 0 and (s != 0 or n == 1) for s, n in zip(t.stride()[:-1], t.shape[:-1]))


def aligned(t: torch.Tensor, copy: bool) -> torch.Tensor:
    """``t``, or a fresh contiguous copy when its strides (``copy``, decided once per call signature) or its base
    pointer break the compiled layout rule (read-only inputs only)."""
    return t.clone(memory_format=torch.contiguous_format) if copy or t.data_ptr() % 16 else t


def check_tensor(name: str, t, ndim: int, dims: str = "(batch, seqlen, nheads, head_dim)") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims {dims}, got shape {tuple(t.shape)}")


def check_strides(name: str, t: torch.Tensor) -> None:
    """Tensors the kernels write (or that are never copied) must meet the compiled stride rule as they are."""
    if not strides_ok(t):
        raise ValueError(f"{name} must have a contiguous last dim and other strides that are non-zero "
                         f"multiples of {STRIDE_DIVISIBILITY}; got strides {t.stride()}")


def check_device(name: str, t: torch.Tensor, ref: torch.Tensor | None) -> None:
    if not t.is_cuda:
        raise ValueError(f"{name} must be a CUDA tensor, got device {t.device}")
    if ref is not None and t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but q is on {ref.device}")


def check_qkv(q, k, v, dims: str) -> tuple[str, int, int, int]:
    """q, k, v of one layout (``dims``: BSHD, or the packed ``(total, nheads, head_dim)`` of varlen): tensors of that
    rank, one 16-bit dtype, k and v alike, a supported head dim shared by all, query heads a multiple of the KV heads.
    Returns ``(dtype name, head_dim, nheads, nheads_kv)``."""
    ndim = dims.count(",") + 1
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, t, ndim, dims)
    dtype = TORCH_DTYPES.get(q.dtype)
    if dtype is None:
        raise TypeError(f"q must be float16 or bfloat16, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but q has {q.dtype}; all inputs must share one dtype")
    nheads, head_dim = q.shape[-2], q.shape[-1]
    nheads_kv = k.shape[-2]
    if head_dim not in ALL_HEAD_DIMS:
        raise ValueError(f"q head_dim {head_dim} is not supported; supported: {ALL_HEAD_DIMS}")
    if tuple(k.shape) != tuple(v.shape):
        raise ValueError(f"k shape {tuple(k.shape)} and v shape {tuple(v.shape)} must match")
    if ndim == 4 and k.shape[0] != q.shape[0]:
        raise ValueError(f"k batch {k.shape[0]} does not match q batch {q.shape[0]}")
    if k.shape[-1] != head_dim:
        raise ValueError(f"k head_dim {k.shape[-1]} does not match q head_dim {head_dim}")
    if nheads_kv == 0 or nheads % nheads_kv:
        raise ValueError(f"q nheads {nheads} must be a multiple of k nheads_kv {nheads_kv}")
    return dtype, head_dim, nheads, nheads_kv


def check_out(out, q: torch.Tensor, dims: str) -> None:
    """An optional output tensor: the shape and dtype of ``q`` (its strides: :func:`check_strides`)."""
    if out is not None:
        check_tensor("out", out, q.ndim, dims)
        if tuple(out.shape) != tuple(q.shape) or out.dtype != q.dtype:
            raise ValueError(f"out must have shape {tuple(q.shape)} and dtype {q.dtype}, "
                             f"got {tuple(out.shape)} {out.dtype}")


def check_window(window_size) -> tuple[int, int]:
    if not isinstance(window_size, (tuple, list)) or len(window_size) != 2:
        raise TypeError(f"window_size must be a pair (left, right), got {window_size!r}")
    left, right = window_size
    for side, w in (("left", left), ("right", right)):
        if isinstance(w, bool) or not isinstance(w, int):
            raise TypeError(f"window_size {side} must be an int, got {type(w).__name__}")
        if w < -1:
            raise ValueError(f"window_size {side} must be >= -1 (-1 = unbounded), got {w}")
    return left, right


def check_options(head_dim: int, softmax_scale, causal, window_size, return_lse, num_splits) -> tuple[float, int, int]:
    """Validate the scalar options every entry point shares; return (softmax_scale, left, right), -1 = unbounded."""
    left, right = check_window(window_size)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if causal:
        right = 0
    if softmax_scale is None:
        softmax_scale = head_dim**-0.5
    elif isinstance(softmax_scale, bool) or not isinstance(softmax_scale, (int, float)):
        raise TypeError(f"softmax_scale must be a float, got {type(softmax_scale).__name__}")
    elif not math.isfinite(softmax_scale):
        raise ValueError(f"softmax_scale must be finite, got {softmax_scale}")
    if not isinstance(return_lse, bool):
        raise TypeError(f"return_lse must be a bool, got {type(return_lse).__name__}")
    if isinstance(num_splits, bool) or not isinstance(num_splits, int):
        raise TypeError(f"num_splits must be an int, got {type(num_splits).__name__}")
    if num_splits < 0 or num_splits > launcher.MAX_SPLITS:
        raise ValueError(f"num_splits must be in 0..{launcher.MAX_SPLITS} (0 = heuristic), got {num_splits}")
    return float(softmax_scale), left, right


def resolve_variant(variant, desc: AttnDesc, config: str | None, target: str | None = None,
                    over_cache: bool = False) -> Variant:
    """The variant a call runs: forced by name or object, else the registry's choice for ``desc`` in ``config``
    (none named: the target's default configs in order, :func:`~cute_attention.host.registry.default_configs`).
    ``over_cache``: the call reads a KV cache (a variant built for a paged cache serves no other call)."""
    if config is not None and not isinstance(config, str):
        raise TypeError(f"config must be a str, got {type(config).__name__}")
    if config is not None and config not in REGISTRY.configs():
        raise ValueError(f"config {config!r} is not registered; known: {REGISTRY.configs()}")
    if variant is None:
        configs = (config,) if config is not None else default_configs(target, desc) if target else (DEFAULT_CONFIG,)
        chosen, errors = None, []
        for c in configs:
            try:
                chosen = REGISTRY.find(desc, c)
                break
            except ValueError as e:
                errors.append(e.args[0])
        if chosen is None:
            raise ValueError(f"config: {'; '.join(errors)}")
    elif isinstance(variant, str):
        try:
            chosen = REGISTRY.get(variant)
        except KeyError as e:
            raise ValueError(f"variant: {e.args[0]}") from None
    elif isinstance(variant, Variant):
        chosen = variant
    else:
        raise TypeError(f"variant must be a registered name or a Variant, got {type(variant).__name__}")
    if chosen.kv_cache.paged and not over_cache:
        raise ValueError(f"variant {chosen.name} reads K/V from a paged cache: call attention_with_kvcache with a "
                         "block_table")
    if config is not None and chosen.config != config:
        raise ValueError(f"variant {chosen.name} is a {chosen.config} variant, but config={config!r} was asked for")
    if target is not None and chosen.targets is not None and target not in chosen.targets:
        raise ValueError(f"variant {chosen.name} runs on {', '.join(chosen.targets)} only; this GPU compiles for "
                         f"{target} (config={chosen.config!r})")
    if desc.head_dim not in chosen.head_dims:
        raise ValueError(f"variant {chosen.name} does not support head_dim {desc.head_dim} (has {chosen.head_dims})")
    if desc.dtype not in chosen.dtypes:
        raise TypeError(f"variant {chosen.name} does not support dtype {desc.dtype} (has {chosen.dtypes})")
    return chosen
