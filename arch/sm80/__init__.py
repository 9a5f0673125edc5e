"""Ampere-generation blocks: m16n8k16 Impl and the multistage cp.async mainloop."""

from cute_attention.arch.sm80.mainloop import Sm80CpAsync
from cute_attention.arch.sm80.mma16816 import Impl16816, Mma16816

__all__ = ["Impl16816", "Mma16816", "Sm80CpAsync"]
