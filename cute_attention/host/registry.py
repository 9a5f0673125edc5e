"""Registry: named kernel variants and the rule that picks one for a problem (TurboMind's ``Registry::Find``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from cute_attention.arch.common.simt_impl import Simt
from cute_attention.arch.sm70 import Mma884, Sm70Sync
from cute_attention.arch.sm75 import Mma1688
from cute_attention.arch.sm80 import Mma16816, Sm80CpAsync
from cute_attention.arch.sm90 import Sm90WarpSpecialized, Wgmma
from cute_attention.kernels.variant import Variant
from cute_attention.kv import PagedKVCache


@dataclass(frozen=True)
class AttnDesc:
    """What the dispatcher knows about a call."""

    head_dim: int
    dtype: str
    seqlen_q: int
    seqlen_k: int
    causal: bool
    has_window: bool
    group: int = 1  # query heads per KV head (GQA)
    block_size: int = 0  # paged KV cache block size; 0 for a contiguous cache
    kv_quant: str | None = None  # a quantized cache's format (int8, int4, fp8; :mod:`cute_attention.kv.quant`)


Predicate = Callable[[AttnDesc], bool]
DEFAULT_CONFIG = "sm80"


class Registry:
    """Ordered (variant, predicate) entries; :meth:`find` returns the first whose predicate holds."""

    def __init__(self):
        self._entries: list[tuple[Variant, Predicate]] = []

    def register(self, variant: Variant, when: Predicate | None = None, *, first: bool = False) -> Variant:
        entry = (variant, when or (lambda d: True))
        if first:
            self._entries.insert(0, entry)
        else:
            self._entries.append(entry)
        return variant

    def variants(self) -> list[Variant]:
        seen, out = set(), []
        for v, _ in self._entries:
            if v.name not in seen:
                seen.add(v.name)
                out.append(v)
        return out

    def get(self, name: str) -> Variant:
        for v, _ in self._entries:
            if v.name == name:
                return v
        raise KeyError(f"no variant named {name!r}; known: {[v.name for v in self.variants()]}")

    def configs(self) -> list[str]:
        """The configs (``Variant.config``: the generation whose algorithm runs) with registered variants, e.g.
        ``["sm80", "sm75"]``."""
        return list(dict.fromkeys(v.config for v, _ in self._entries))

    def find(self, desc: AttnDesc, config: str = DEFAULT_CONFIG) -> Variant:
        """First variant of generation ``config`` whose head dims and rule accept ``desc``."""
        for v, when in self._entries:
            if v.config == config and desc.head_dim in v.head_dims and desc.dtype in v.dtypes and when(desc):
                return v
        raise ValueError(f"no registered {config} kernel variant handles {desc}")


def _sm80(name: str, tile_m: int, tile_n: int, warps_q: int, warps_s: int, stages: int,
          head_dims: tuple[int, ...], spill_budget: int = 0, **knobs) -> Variant:
    return Variant(name, Mma16816(tile_m, tile_n, warps_q, warps_s, **knobs), Sm80CpAsync(stages),
                   head_dims=head_dims, spill_budget=spill_budget)


# 32 query rows per warp keep ldmatrix traffic under the shared-memory bandwidth, but at d >= 96 such
# tiles sit at the 255-register limit: ptxas -O3 spills a few dozen values to L1, and the spill-free
# -O1 build measured slower (H100, d128 s8k: 359 vs 381 TFLOP/s), so these variants carry a budget.
# At d 96/128 the 4-stage ring with lazy O rescale and ldmatrix one copy ahead of its MMAs measured best
# (H100, d128 s4k: 382 vs 367 TFLOP/s eager, 377 with 3 stages; benchmarks/results/h100/sweep_*.json).
SM80_M128N64_S4L = _sm80("sm80_m128n64_s4_lazy", 128, 64, 4, 1, 4, (64, 96, 128), spill_budget=96,
                         rescale_threshold=8.0, ldsm_ahead=1)
# At d64 the eager 2-stage build measured best (d64 s8k: 348 vs 329 for the d128 choice).
SM80_M128N64 = _sm80("sm80_m128n64_s2", 128, 64, 4, 1, 2, (64, 96, 128), spill_budget=96)
# 16 rows per warp: the d = 256 build spills a handful of values yet beats the spill-free 128x32x8 one
# (H100, d256 s8k: 340 vs 286 TFLOP/s).
SM80_M64N64 = _sm80("sm80_m64n64_s2", 64, 64, 4, 1, 2, (64, 96, 128, 192, 256), spill_budget=16)
SM80_M128N32_W8 = _sm80("sm80_m128n32_w8", 128, 32, 8, 1, 2, (192, 256))
SM80_M64N64_WS2 = _sm80("sm80_m64n64_w2x2", 64, 64, 2, 2, 2, (64, 96, 128), spill_budget=96)

# Decode and very short queries: 16 query rows per CTA and four warps splitting every KV tile (merged at the
# end), 3-stage ring. With one query token a 128-row tile computes 127 idle rows per KV tile; this one reads
# K/V at a much higher rate (benchmarks/results/h100/decode_variants.json).
# (Not d96: one copy pass of 128 threads covers 32 rows of a 96-wide tile, more than the tile's 16.)
SM80_M16N64_W1X4 = _sm80("sm80_m16n64_w1x4_s3", 16, 64, 1, 4, 3, (64, 128))
# Decode with GQA (TurboMind's decode CTA serving CTA_H query heads): the same tiles with every query head of
# one KV head packed into M, so a CTA reads each K/V tile once for its whole group instead of once per head.
# The row -> (token, head) arithmetic costs a few registers: the sm_80 d96 build spills 3 values.
SM80_M16N64_W1X4_PACK = dataclasses.replace(SM80_M16N64_W1X4, name="sm80_m16n64_w1x4_s3_pack", pack_gqa=True,
                                            spill_budget=8)
# The same decode tile reading a paged cache's block table one load ahead (one read per tile, landed before the
# tile's issue; sm_90a paged 64: no table read between a barrier and its copies) with a 5-deep ring: 2 CTAs per
# SM (87 KiB of shared memory) instead of 3, so an unsplit large batch runs in waves the split cost model
# expects. H100, 32/8 heads, paged 64: 64 x 4k 2934 vs 2853 GB/s for the 3-deep ring, others within 2%
# (benchmarks/results/h100/sweep_decode_la_9c5ee18.txt). With 16-token blocks (four reads per tile) the
# lookahead was slower at 128/256 x 1k, so the registry takes it for blocks of 64 and more.
SM80_M16N64_W1X4_PACK_LA = dataclasses.replace(SM80_M16N64_W1X4_PACK, name="sm80_m16n64_w1x4_s5_pack_la",
                                               mainloop=Sm80CpAsync(5, locate_ahead=True))
# Speculative decoding / short queries with larger groups (up to 64 packed rows, e.g. 8 tokens x 8 heads).
SM80_M64N64_WS2_PACK = dataclasses.replace(SM80_M64N64_WS2, name="sm80_m64n64_w2x2_pack", pack_gqa=True)

# Decode with 1-2 query heads per KV head (TurboMind's SIMT decode path): a 16-row MMA computes 14-15 idle rows,
# so up to 8 packed rows run on CUDA-core FMA (SIMT Impl, LDS.64 operands) while four warp groups split every KV
# tile of the cp.async ring, merged at the end. d128 only (at d < 128 one copy pass covers more than 8 rows).
# On the H100 it reads K/V at half the rate of the 16-row tensor-core tile (MHA decode, 32 heads, paged 64:
# 1345 vs 3048 GB/s at 1 x 128k; benchmarks/results/h100/decode_simt.json), so the registry does not pick it:
# it is there by name, for GPUs where FMA issue is cheap relative to memory.
SIMT_M8N64_W1X4_PACK = Variant("simt_m8n64_w1x4_s3_pack", Simt(8, 64, 1, 4, k_unroll=2), Sm80CpAsync(3),
                               head_dims=(128,), pack_gqa=True)

REGISTRY = Registry()
# the lookahead tile where a block holds a whole KV tile (one table read per tile)
REGISTRY.register(SM80_M16N64_W1X4_PACK_LA, lambda d: d.group > 1 and d.seqlen_q * d.group <= 16
                  and d.block_size >= SM80_M16N64_W1X4_PACK_LA.impl.tile_n)
REGISTRY.register(SM80_M16N64_W1X4_PACK, lambda d: d.group > 1 and d.seqlen_q * d.group <= 16)
REGISTRY.register(SM80_M64N64_WS2_PACK, lambda d: d.group > 1 and d.seqlen_q * d.group <= 64)
REGISTRY.register(SM80_M16N64_W1X4, lambda d: d.seqlen_q <= 16)
REGISTRY.register(SM80_M64N64_WS2, lambda d: d.seqlen_q <= 64 and d.seqlen_k >= 256)
REGISTRY.register(SM80_M128N64, lambda d: d.head_dim == 64)
REGISTRY.register(SM80_M128N64_S4L, lambda d: d.head_dim <= 128)
REGISTRY.register(SM80_M64N64)
REGISTRY.register(SM80_M128N32_W8, lambda d: False)  # spill-free alternative for d >= 192, by name
REGISTRY.register(SIMT_M8N64_W1X4_PACK, lambda d: False)  # SIMT decode, by name (slower on the H100, see above)

# "sm75": Turing's algorithm (m16n8k8 + the synchronous Sm70 mainloop, Q kept in registers so its shared
# memory joins the K/V slots). 16 query rows per warp. d >= 192 keeps Q in shared memory: its fragments
# would not fit next to O.
SM75_M64N64 = Variant("sm75_m64n64_sync", Mma1688(64, 64, 4, 1, q_in_regs=True, ldsm_ahead=1), Sm70Sync(),
                      config="sm75", head_dims=(64, 96, 128), spill_budget=24)
SM75_M64N32 = Variant("sm75_m64n32_sync_qsmem", Mma1688(64, 32, 4, 1), Sm70Sync(), config="sm75",
                      head_dims=(192, 256), spill_budget=96)
REGISTRY.register(SM75_M64N64)
REGISTRY.register(SM75_M64N32)

# "sm70": Volta's algorithm (m8n8k4 through inline PTX + the synchronous mainloop, fp16 only). Operands and P
# go through shared memory (no ldmatrix on Volta). ptxas emulates m8n8k4 on CUDA cores on sm_80/sm_90.
# d >= 192 uses 8 warps so that the register-staged K/V tiles and O fit without spills.
SM70_M64N64 = Variant("sm70_m64n64_884", Mma884(64, 64, 4), Sm70Sync(), config="sm70", dtypes=("float16",),
                      head_dims=(64, 96, 128))
SM70_M128N32 = Variant("sm70_m128n32_884", Mma884(128, 32, 8), Sm70Sync(), config="sm70", dtypes=("float16",),
                       head_dims=(192, 256))
REGISTRY.register(SM70_M64N64)
REGISTRY.register(SM70_M128N32)

# "simt": TurboMind's SIMT Impl (CUDA-core FFMA on fp32-widened operands) with the synchronous mainloop.
SIMT_M64N64 = Variant("simt_m64n64", Simt(64, 64, 4, k_unroll=2), Sm70Sync(), config="simt",
                      head_dims=(64, 96, 128))
SIMT_M128N32 = Variant("simt_m128n32", Simt(128, 32, 8, k_unroll=2), Sm70Sync(), config="simt",
                       head_dims=(192, 256))
REGISTRY.register(SIMT_M64N64)
REGISTRY.register(SIMT_M128N32)

# "sm90": Hopper's algorithm (TMA producer warp + warpgroup-MMA consumer warp groups, FlashAttention-3's roles),
# sm_90a only; the default for prefill on an sm_90 GPU (see :func:`default_configs`); over a KV cache (contiguous or
# paged) and for decode rows (PackGQA tiles below) by config="sm90". Tiles from
# benchmarks/results/h200/sweep_sm90_*.json (H200, bf16, b·s = 16k, s 2k and 8k, TFLOP/s):
# d64: 192x128 (3 consumer groups) 406-513 full vs 370-437 for 128x128; causal s2k was the exception (287 vs 261)
#      until masks became selects (sweep_sm90_7bfa038_h100.json, H100: 368 vs 335, no spills).
# d128: 128x128; 128x112 and 128x176 slower (585 vs 548 / 432 at s2k); turns between groups within noise.
# d256: 128x80 (694-778 full) over 128x64 (665-758) and 128x48 with 3 stages (599-651); FA4 runs d256 without turns,
#      which measured within noise here, so the turns stay on.
# d96: 128x128. In sweep_sm90_7bfa038_h100.json (H100) 192x96 ran faster without a mask (544 / 612 at s2k / 8k against
#      531 / 589), but its builds spill (17 LDL/STL with LSE, 21 causal, 106 with a window): not registered.
# d192 (same sweep): 128x112 (659 / 744 full, 511 / 669 causal), ahead of 128x96, 128x80 and 128x64 but at causal s2k.
# d64, 192 against 128 query rows: 192x128 is 1.10-1.24x faster per row at s2k / 8k (sweep above) but pads a query
#      of 256 rows to 384: chunked prefill (256 rows over a contiguous cache, 32/8 heads, H100,
#      chunked_d64_2c40fe0_h100.json) ran 354 / 302 TFLOP/s with it against 420 / 367 with 128x128 over paged 64; the
#      192-row tiles are taken only where they pad at most 15% more rows (s 512 and 1k pad 12.5%).
# d64 causal: 192x128 with O rescaled after P·V landed (ab_sm90_e081b60_h100.json, H100, 3 rounds: 360 / 516 TFLOP/s
#      at s2k / 8k against 342 / 475 with the rescale under Q·Kᵀ); without a mask the early rescale stays ahead
#      (488 / 566 against 486 / 555), and at d128 / d256 it is ahead with and without a mask.
SM90_SASS_TARGETS = ("sm_90a",)


def _sm90(name: str, tile_m: int, tile_n: int, head_dims: tuple[int, ...], stages: int = 2, spill_budget: int = 0,
          pack_gqa: bool = False, **knobs) -> Variant:
    return Variant(name, Wgmma(tile_m, tile_n), Sm90WarpSpecialized(stages, **knobs), config="sm90",
                   head_dims=head_dims, targets=SM90_SASS_TARGETS, spill_budget=spill_budget, pack_gqa=pack_gqa)


def _contiguous(d: AttnDesc) -> bool:
    """Contiguous K/V (a padded batch, a ragged one, or a contiguous cache)."""
    return d.block_size == 0


def _fills_m192(d: AttnDesc) -> bool:
    """192-row query tiles pad at most 15% more rows than 128-row tiles (the 192-row tile's speed-up at d64)."""
    return -(-d.seqlen_q // 192) * 192 * 100 <= -(-d.seqlen_q // 128) * 128 * 115


# Over a paged cache the KV tile and the block must divide one another (a tile is one TMA copy from its block, or
# one per block): 128 rows for d <= 128, 64 for d192 / d256 (112 and 80 divide no block size but 16; 128x64 ran
# 665-758 at d256 in the sweep above).
# PackGQA (a query tile of one consumer warp group holds every query head of a KV head, Q loaded by the consumers
# through registers): for GQA calls of at most 64 packed rows (decode) in config sm90; the sm80 decode tiles read the
# cache 0-2% faster in 7 of 9 cases (decode_sm90_vs_sm80_8c2f92a.json) and stay the default for decode.
SM90_M64N128_PACK = _sm90("sm90_m64n128_pack", 64, 128, (64, 96, 128), pack_gqa=True)
SM90_M64N64_PACK = _sm90("sm90_m64n64_pack", 64, 64, (192, 256), pack_gqa=True)
REGISTRY.register(SM90_M64N128_PACK, lambda d: d.group > 1 and d.seqlen_q * d.group <= 64)
REGISTRY.register(SM90_M64N64_PACK, lambda d: d.group > 1 and d.seqlen_q * d.group <= 64)
# The same tiles with K/V by cp.async from the producer warp group (FlashAttention-3's path for paged blocks smaller
# than a tile) instead of one TMA copy per block; built over 16-token blocks (the catalogue's build), any paged cache
# by name. Measured against the TMA tiles (H100, 32/8 heads, d128, decode_sm90_cp_async_88aa676_h100.json,
# chunked_sm90_cp_async_88aa676_h100.json): decode within 1% (TMA ahead by 0-0.6%), chunked prefill over paged 16 /
# 64 453 / 453 TFLOP/s against TMA's 525 / 659 (4 x 8k): TMA stays the registry's choice.
SM90_M64N128_PACK_CP = dataclasses.replace(
    _sm90("sm90_m64n128_pack_cpasync", 64, 128, (64, 128), pack_gqa=True, kv_cp_async=True),
    kv_cache=PagedKVCache(16))
SM90_M128N128_CP = dataclasses.replace(_sm90("sm90_m128n128_cpasync", 128, 128, (64, 128), kv_cp_async=True),
                                       kv_cache=PagedKVCache(16))
REGISTRY.register(SM90_M64N128_PACK_CP, lambda d: False)
REGISTRY.register(SM90_M128N128_CP, lambda d: False)
SM90_M192N128_LATE = _sm90("sm90_m192n128_late", 192, 128, (64,), rescale_o_early=False)
SM90_M192N128 = _sm90("sm90_m192n128", 192, 128, (64,))
SM90_M128N128 = _sm90("sm90_m128n128", 128, 128, (64, 96, 128))
SM90_M128N112 = _sm90("sm90_m128n112", 128, 112, (192,))
SM90_M128N80 = _sm90("sm90_m128n80", 128, 80, (192, 256))
SM90_M128N64 = _sm90("sm90_m128n64", 128, 64, (192, 256))
REGISTRY.register(SM90_M192N128_LATE, lambda d: d.head_dim == 64 and d.causal and _contiguous(d) and _fills_m192(d))
REGISTRY.register(SM90_M192N128, lambda d: d.head_dim == 64 and _contiguous(d) and _fills_m192(d))
REGISTRY.register(SM90_M128N128)
REGISTRY.register(SM90_M128N112, _contiguous)
REGISTRY.register(SM90_M128N80, _contiguous)
REGISTRY.register(SM90_M128N64, lambda d: not _contiguous(d))


def default_configs(target: str, desc: AttnDesc) -> tuple[str, ...]:
    """Configs tried in order when a call names none: on sm_90a the Hopper variants first for prefill, over contiguous
    K/V or a cache (more than 64 query rows: shorter queries keep the sm80 decode tiles of 16-64 rows, which read a
    cache 0-2% faster than sm90's PackGQA tiles), then sm80's. Chunked prefill over a paged cache (H100, 256 query
    rows, 32/8 heads, d128, paged 16 / 64, 4 x 8k and 16 x 2k,
    benchmarks/results/h200/chunked_sm90_cp_async_88aa676_h100.json): sm90 477-659 TFLOP/s against sm80's 285-374.
    A quantized cache keeps sm80's: the Hopper kernels have no dequant step."""
    if target in SM90_SASS_TARGETS and desc.seqlen_q > 64 and desc.kv_quant is None:
        return ("sm90", DEFAULT_CONFIG)
    return (DEFAULT_CONFIG,)
