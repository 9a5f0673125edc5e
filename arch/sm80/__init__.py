"""Ampere-generation blocks: m16n8k16 Impl and the multistage cp.async mainloop."""

from cute_attention.arch.sm80.impl import Impl16816, Mma16816
from cute_attention.arch.sm80.mainloop import Sm80CpAsync

__all__ = ["Impl16816", "Mma16816", "Sm80CpAsync"]
