"""Hopper-generation blocks: the warpgroup-MMA Impl, TMA movers and the warp-specialized mainloop."""

from cute_attention.arch.sm90.mainloop import Sm90WarpSpecialized
from cute_attention.arch.sm90.tma import TmaTiles
from cute_attention.arch.sm90.wgmma_impl import Wgmma, WgmmaImpl

__all__ = ["Sm90WarpSpecialized", "TmaTiles", "Wgmma", "WgmmaImpl"]
