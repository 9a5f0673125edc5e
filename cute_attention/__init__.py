"""cute-attention: attention kernels composed from per-architecture CuTe DSL building blocks.

``attention`` and ``attention_with_kvcache`` are the FlashAttention-style entry points; :class:`Variant` + the blocks in
``cute_attention.arch`` compose new kernels; ``REGISTRY`` lists and picks variants.
"""

from cute_attention.api.attention import attention
from cute_attention.api.kvcache import attention_with_kvcache
from cute_attention.host.registry import REGISTRY, AttnDesc, Registry
from cute_attention.kernels.variant import Variant

__all__ = ["attention", "attention_with_kvcache", "Variant", "REGISTRY", "Registry", "AttnDesc"]
__version__ = "0.1.0"
