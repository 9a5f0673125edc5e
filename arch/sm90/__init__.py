"""Hopper-generation blocks: the warpgroup-MMA Impl, TMA movers, the cp.async mover of paged caches and the
warp-specialized mainloop."""

from cute_attention.arch.sm90.mainloop import Sm90WarpSpecialized
from cute_attention.arch.sm90.paged_cp_async import PagedCpAsyncTiles
from cute_attention.arch.sm90.tma import TmaTiles
from cute_attention.arch.sm90.wgmma_impl import Wgmma, WgmmaImpl

__all__ = ["PagedCpAsyncTiles", "Sm90WarpSpecialized", "TmaTiles", "Wgmma", "WgmmaImpl"]
