"""Turing-generation blocks: the m16n8k8 Impl (paired with the Sm70 synchronous mainloop)."""

from cute_attention.arch.sm75.mma1688 import Impl1688, Mma1688

__all__ = ["Impl1688", "Mma1688"]
