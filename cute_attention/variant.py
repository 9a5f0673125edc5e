"""A kernel variant: one choice of each building block, composed by :class:`AttentionKernel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cute_attention.cache_iterators import LinearKVCache
from cute_attention.cta_map import AttentionCtaMap

ALL_HEAD_DIMS = (64, 96, 128, 192, 256)


@dataclass(frozen=True)
class Variant:
    """``impl`` (MMA family recipe) + ``mainloop`` (pipeline strategy) + cache factory + CTA map.

    Frozen and hashable: a variant is part of the compile key. ``arch`` names the generation whose
    algorithm the variant is (the DSL emits sm_80+ code for all of them).
    """

    name: str
    impl: Any
    mainloop: Any
    kv_cache: Any = field(default_factory=LinearKVCache)
    cta_map: Any = field(default_factory=AttentionCtaMap)
    arch: str = "sm80"
    head_dims: tuple[int, ...] = ALL_HEAD_DIMS
    dtypes: tuple[str, ...] = ("float16", "bfloat16")
    ptxas_options: str = ""  # e.g. "-O1": less aggressive scheduling keeps big tiles free of spills
    # LDL+STL instructions the SASS checks tolerate. 0 for every variant unless a measurement says
    # the spilling build is the faster one (see docs/benchmarks.md); a regression guard, not a target.
    spill_budget: int = 0
    # PackGQA: one CTA serves all query heads of a KV head, their (token, head) rows packed into the tile's M
    # (heads-into-M, FlashAttention-3's PackGQA; TurboMind's decode CTA_H): K/V are read once per KV head
    pack_gqa: bool = False

    def describe(self) -> str:
        i = self.impl
        return (f"{self.arch}: {i.family} tile {i.tile_m}x{i.tile_n} warps {i.warps_q}x{i.warps_s}, "
                f"{self.mainloop.name} stages={getattr(self.mainloop, 'stages', '-')}, {self.kv_cache.name}"
                + (f", lazy rescale 2^{i.rescale_threshold:g}" if getattr(i, "rescale_threshold", None) else "")
                + (f", ldsm {i.ldsm_ahead} ahead" if getattr(i, "ldsm_ahead", None) else "")
                + (f", ptxas {self.ptxas_options}" if self.ptxas_options else "")
                + (", query heads packed into M" if self.pack_gqa else ""))
