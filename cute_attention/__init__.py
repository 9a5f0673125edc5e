"""cute-attention: attention kernels composed from per-architecture CuTe DSL building blocks.

``attention``, ``attention_with_kvcache``, ``attention_varlen`` and the FlashAttention-compatible ``flash_attn_*``
functions are the torch entry points; :class:`Variant` + the blocks in ``cute_attention.arch`` compose new kernels;
``REGISTRY`` lists and picks variants. Forward only: a call whose inputs require gradients (with grad mode on) raises.

Names are imported on first use, so compiling (``cute-attention precompile``) needs neither torch nor a GPU.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "attention": "cute_attention.api.attention",
    "attention_with_kvcache": "cute_attention.api.kvcache",
    "attention_varlen": "cute_attention.api.varlen",
    "flash_attn_func": "cute_attention.api.flash_attn",
    "flash_attn_varlen_func": "cute_attention.api.flash_attn",
    "flash_attn_with_kvcache": "cute_attention.api.flash_attn",
    "quantize_kv": "cute_attention.api.quantize",
    "dequantize_kv": "cute_attention.api.quantize",
    "REGISTRY": "cute_attention.host.registry",
    "Registry": "cute_attention.host.registry",
    "AttnDesc": "cute_attention.host.registry",
    "Variant": "cute_attention.kernels.variant",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cute_attention' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
