"""Torch entry points (FlashAttention's conventions): :func:`attention` and :func:`attention_with_kvcache`."""

from cute_attention.api.attention import attention
from cute_attention.api.kvcache import attention_with_kvcache

__all__ = ["attention", "attention_with_kvcache"]
