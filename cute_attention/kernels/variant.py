"""A kernel variant: one choice of each building block, composed by the attention kernel object."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from cute_attention.core.contracts import CtaMap, ImplRecipe, KVCacheLayout, MainloopStrategy
from cute_attention.kernels.cta_map import AttentionCtaMap
from cute_attention.kv import LinearKVCache
from cute_attention.kv.quant import KVQuant

ALL_HEAD_DIMS = (64, 96, 128, 192, 256)


@dataclass(frozen=True)
class Variant:
    """``impl`` (MMA family recipe) + ``mainloop`` (pipeline strategy) + KV cache layout + CTA map.

    Frozen and hashable: a variant is part of the compile key. ``config`` names the generation whose algorithm the
    variant runs (``"sm80"``, ``"sm75"``, ``"sm70"``, ``"simt"``: what ``attention(config=...)`` picks from); the DSL
    emits sm_80+ code for all of them, the compile *target* (``sm_80``, ``sm_90a``) is chosen separately.
    """

    name: str
    impl: ImplRecipe
    mainloop: MainloopStrategy
    kv_cache: KVCacheLayout = field(default_factory=LinearKVCache)
    cta_map: CtaMap = field(default_factory=AttentionCtaMap)
    config: str = "sm80"
    head_dims: tuple[int, ...] = ALL_HEAD_DIMS
    dtypes: tuple[str, ...] = ("float16", "bfloat16")
    ptxas_options: str = ""  # e.g. "-O1": less aggressive scheduling keeps big tiles free of spills
    # LDL+STL instructions the SASS checks tolerate. 0 for every variant unless a measurement says
    # the spilling build is the faster one (see docs/benchmarks.md); a regression guard, not a target.
    spill_budget: int = 0
    # PackGQA: one CTA serves all query heads of a KV head, their (token, head) rows packed into the tile's M
    # (heads-into-M, FlashAttention-3's PackGQA; TurboMind's decode CTA_H): K/V are read once per KV head
    pack_gqa: bool = False
    # compile targets the variant's instructions exist on (None: every target); the catalogue builds it only there
    targets: tuple[str, ...] | None = None
    # a quantized K/V cache (:mod:`cute_attention.kv.quant`): K/V move as bytes with their parameters through the
    # combined iterator and the Impl dequantizes them (None: fp16/bf16 K/V)
    kv_quant: KVQuant | None = None

    def describe(self) -> str:
        return (f"{self.config}: {self.impl.describe()}; {self.mainloop.describe()}; {self.kv_cache.name} KV"
                + (f"; ptxas {self.ptxas_options}" if self.ptxas_options else "")
                + ("; query heads packed into M" if self.pack_gqa else "")
                + (f"; {self.kv_quant.name} KV" if self.kv_quant is not None else ""))


@functools.lru_cache(maxsize=256)
def with_kv_cache(base: Variant, cache: KVCacheLayout) -> Variant:
    """``base`` reading K/V through ``cache`` (named ``base+cache``; built once per pair, it is part of compile
    keys)."""
    return dataclasses.replace(base, name=f"{base.name}+{cache.name}", kv_cache=cache)


@functools.lru_cache(maxsize=256)
def with_kv_quant(base: Variant, fmt: KVQuant) -> Variant:
    """``base`` over a cache quantized as ``fmt`` (named ``base+fmt``)."""
    return dataclasses.replace(base, name=f"{base.name}+{fmt.name}", kv_quant=fmt)
