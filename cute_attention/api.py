"""Torch API: ``attention(q, k, v, ...)`` with FlashAttention's conventions.

Every check runs before any launch and raises ``TypeError`` (wrong kind or dtype) or ``ValueError``
(wrong shape, device, value) naming the argument; nothing is written on error.

Input layout: q/k/v whose last dim is not contiguous, whose base is not 16-byte aligned, or whose
other strides are not multiples of 8 elements (or are 0, broadcast) are copied to a contiguous
tensor first. ``out`` is never copied: it must meet those rules or the call raises.
"""

from __future__ import annotations

import math

import torch

from cute_attention import launcher
from cute_attention.compile_cache import STRIDE_DIVISIBILITY
from cute_attention.masks import MaskSpec
from cute_attention.registry import DEFAULT_CONFIG, REGISTRY, AttnDesc
from cute_attention.variant import ALL_HEAD_DIMS, Variant

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


_PLANS = PlanCache()


def _strides_ok(t: torch.Tensor) -> bool:
    """The stride part of the layout compiled kernels assume (see :mod:`cute_attention.compile_cache`)."""
    if t.stride(-1) != 1:
        return False
    return all(s % STRIDE_DIVISIBILITY == 0 and (s != 0 or n == 1) for s, n in zip(t.stride()[:-1], t.shape[:-1]))


def _aligned(t: torch.Tensor, copy: bool) -> torch.Tensor:
    """``t``, or a fresh contiguous copy when its strides (``copy``, decided once per call signature) or its base
    pointer break the compiled layout rule (read-only inputs only)."""
    return t.clone(memory_format=torch.contiguous_format) if copy or t.data_ptr() % 16 else t


def _check_tensor(name: str, t, ndim: int, dims: str = "(batch, seqlen, nheads, head_dim)") -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dims {dims}, got shape {tuple(t.shape)}")


def _check_strides(name: str, t: torch.Tensor) -> None:
    """Tensors the kernels write (or that are never copied) must meet the compiled stride rule as they are."""
    if not _strides_ok(t):
        raise ValueError(f"{name} must have a contiguous last dim and other strides that are non-zero "
                         f"multiples of {STRIDE_DIVISIBILITY}; got strides {t.stride()}")


def _check_device(name: str, t: torch.Tensor, ref: torch.Tensor | None) -> None:
    if not t.is_cuda:
        raise ValueError(f"{name} must be a CUDA tensor, got device {t.device}")
    if ref is not None and t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but q is on {ref.device}")


def _check_window(window_size) -> tuple[int, int]:
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
    left, right = _check_window(window_size)
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


def resolve_variant(variant, desc: AttnDesc, config: str | None) -> Variant:
    """The variant a call runs: forced by name or object, else the registry's choice for ``desc`` in ``config``."""
    if config is not None and not isinstance(config, str):
        raise TypeError(f"config must be a str, got {type(config).__name__}")
    if config is not None and config not in REGISTRY.configs():
        raise ValueError(f"config {config!r} is not registered; known: {REGISTRY.configs()}")
    if variant is None:
        try:
            chosen = REGISTRY.find(desc, config or DEFAULT_CONFIG)
        except ValueError as e:
            raise ValueError(f"config: {e.args[0]}") from None
    elif isinstance(variant, str):
        try:
            chosen = REGISTRY.get(variant)
        except KeyError as e:
            raise ValueError(f"variant: {e.args[0]}") from None
    elif isinstance(variant, Variant):
        chosen = variant
    else:
        raise TypeError(f"variant must be a registered name or a Variant, got {type(variant).__name__}")
    if config is not None and chosen.arch != config:
        raise ValueError(f"variant {chosen.name} is a {chosen.arch} variant, but config={config!r} was asked for")
    if desc.head_dim not in chosen.head_dims:
        raise ValueError(f"variant {chosen.name} does not support head_dim {desc.head_dim} (has {chosen.head_dims})")
    if desc.dtype not in chosen.dtypes:
        raise TypeError(f"variant {chosen.name} does not support dtype {desc.dtype} (has {chosen.dtypes})")
    return chosen


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    variant: Variant | str | None = None,
    config: str | None = None,
    num_splits: int = 1,
):
    """Scaled dot-product attention over BSHD tensors.

    q: ``(batch, seqlen_q, nheads, head_dim)``; k, v: ``(batch, seqlen_k, nheads_kv, head_dim)``
    with ``nheads % nheads_kv == 0`` (GQA/MQA: query head ``i`` uses kv head ``i // (nheads // nheads_kv)``).
    ``causal`` and ``window_size=(left, right)`` are aligned bottom-right (query ``i`` sits at key
    position ``i + seqlen_k - seqlen_q``); ``-1`` leaves a side unbounded; ``causal`` sets ``right = 0``.
    Rows that see no key give 0 (and LSE ``-inf``). Returns ``out`` or ``(out, lse)`` with ``lse`` the
    natural-log sum of exponentials, float32 ``(batch, nheads, seqlen_q)``.
    ``config`` picks the generation whose algorithm runs (``"sm80"``: cp.async + m16n8k16, the default;
    ``"sm75"``: synchronous loads + m16n8k8; ``"sm70"``: synchronous loads + m8n8k4, float16 only;
    ``"simt"``: synchronous loads + CUDA-core FMA; see ``REGISTRY.configs()``); the DSL emits sm_80+ code
    for all of them. ``variant`` forces a registered variant (by name) or a composed :class:`Variant`.
    ``num_splits`` splits every query tile's KV range into that many chunks run by separate CTAs, merged
    exactly by the reduction kernel (split-K); ``0`` picks the count from the kernel's occupancy and the
    SM count (TurboMind's cost model); ``1`` is a single pass.
    """
    sig = call_signature((q, k, v, out), (softmax_scale, causal, window_size, return_lse, variant, config, num_splits))
    plan = _PLANS.get(sig)
    if plan is None:
        plan = _plan(q, k, v, softmax_scale, causal, window_size, return_lse, out, variant, config, num_splits)
        _PLANS.put(sig, plan)
    return plan.launch(q, k, v, out)


def _plan(q, k, v, softmax_scale, causal, window_size, return_lse, out, variant, config, num_splits) -> LaunchPlan:
    """Validate one call signature (no tensor data involved) and choose its kernel."""

    _check_tensor("q", q, 4)
    _check_tensor("k", k, 4)
    _check_tensor("v", v, 4)
    dtype = TORCH_DTYPES.get(q.dtype)
    if dtype is None:
        raise TypeError(f"q must be float16 or bfloat16, got {q.dtype}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but q has {q.dtype}; all inputs must share one dtype")
    batch, seqlen_q, nheads, head_dim = q.shape
    _, seqlen_k, nheads_kv, _ = k.shape
    if head_dim not in ALL_HEAD_DIMS:
        raise ValueError(f"q head_dim {head_dim} is not supported; supported: {ALL_HEAD_DIMS}")
    if tuple(k.shape) != tuple(v.shape):
        raise ValueError(f"k shape {tuple(k.shape)} and v shape {tuple(v.shape)} must match")
    if k.shape[0] != batch:
        raise ValueError(f"k batch {k.shape[0]} does not match q batch {batch}")
    if k.shape[3] != head_dim:
        raise ValueError(f"k head_dim {k.shape[3]} does not match q head_dim {head_dim}")
    if nheads_kv == 0 or nheads % nheads_kv:
        raise ValueError(f"q nheads {nheads} must be a multiple of k nheads_kv {nheads_kv}")
    if batch == 0 or nheads == 0 or seqlen_q == 0 or seqlen_k == 0:
        raise ValueError(f"empty problem: q shape {tuple(q.shape)}, k shape {tuple(k.shape)}")
    if nheads > MAX_GRID_YZ or batch > MAX_GRID_YZ:
        raise ValueError(f"nheads ({nheads}) and batch ({batch}) must be <= {MAX_GRID_YZ}")
    softmax_scale, left, right = check_options(head_dim, softmax_scale, causal, window_size, return_lse, num_splits)
    if out is not None:
        _check_tensor("out", out, 4)
        if tuple(out.shape) != tuple(q.shape) or out.dtype != q.dtype:
            raise ValueError(f"out must have shape {tuple(q.shape)} and dtype {q.dtype}, "
                             f"got {tuple(out.shape)} {out.dtype}")
    mask = MaskSpec(has_left=left >= 0, has_right=right >= 0)
    desc = AttnDesc(head_dim, dtype, seqlen_q, seqlen_k, causal, left >= 0 or right >= 0, nheads // nheads_kv)
    chosen = resolve_variant(variant, desc, config)
    _check_device("q", q, None)
    for name, t in (("k", k), ("v", v), ("out", out)):
        if t is not None:
            _check_device(name, t, q)
    if out is not None:
        _check_strides("out", out)
    copies = tuple(not _strides_ok(t) for t in (q, k, v))
    lse_shape = (batch, nheads, seqlen_q) if return_lse else None
    if num_splits != 1:
        split_kernel = launcher.compiled_for(chosen, dtype, head_dim, mask, True, split_kv=True)
        if num_splits == 0:
            ctas = launcher.unsplit_ctas(chosen, batch, seqlen_q, nheads, nheads_kv)
            kv_tiles = math.ceil(seqlen_k / chosen.impl.tile_n)
            num_splits = launcher.choose_splits(split_kernel, ctas, kv_tiles, q.device.index,
                                                launcher.PREFILL_WAVE_CAP)
        if batch * num_splits > MAX_GRID_YZ:
            raise ValueError(f"batch * num_splits ({batch} * {num_splits}) must be <= {MAX_GRID_YZ}")
        if num_splits > 1:
            reduce = launcher.reduce_for(dtype, head_dim, return_lse)
            return LaunchPlan(split_kernel, reduce, num_splits, float(softmax_scale), max(left, 0), max(right, 0),
                              lse_shape, copies)
    kernel = launcher.compiled_for(chosen, dtype, head_dim, mask, return_lse)
    return LaunchPlan(kernel, None, 1, float(softmax_scale), max(left, 0), max(right, 0), lse_shape, copies)


class LaunchPlan:
    """A validated call signature: its compiled kernel (and with split-K the reduction kernel and split count) and
    runtime scalars. Per call only the data pointers' alignment is checked (it is not part of the signature)."""

    __slots__ = ("kernel", "reduce", "num_splits", "scale", "left", "right", "lse_shape", "copies")

    def __init__(self, kernel, reduce, num_splits, scale, left, right, lse_shape, copies):
        self.kernel = kernel
        self.reduce = reduce
        self.num_splits = num_splits
        self.scale = scale
        self.left = left
        self.right = right
        self.lse_shape = lse_shape
        self.copies = copies

    def prepare(self, q, k, v, out):
        """Copy inputs that break the kernels' layout rules; allocate ``out`` or check its alignment."""
        cq, ck, cv = self.copies
        q, k, v = _aligned(q, cq), _aligned(k, ck), _aligned(v, cv)
        if out is None:
            out = torch.empty_like(q)
        elif out.data_ptr() % 16:
            raise ValueError("out must have a 16-byte aligned base pointer")
        return q, k, v, out

    def launch(self, q, k, v, out):
        q, k, v, out = self.prepare(q, k, v, out)
        return launcher.run(self.kernel, self.reduce, self.num_splits, q, k, v, out, self.lse_shape, self.scale,
                            self.left, self.right)
