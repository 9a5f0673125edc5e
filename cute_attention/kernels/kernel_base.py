"""What every attention kernel body reads off its parameter record: the variant's blocks built for one dtype and
head dim, the flags of the launch, and the checks every body makes before it compiles.

Both bodies (:class:`~cute_attention.kernels.attention.AttentionKernel`, every warp loading and computing, and
:class:`~cute_attention.kernels.attention_ws.AttentionKernelWS`, Hopper's producer / consumer roles) derive from
:class:`AttentionKernelBase`, so a new field of the record or the variant is read in one place.
"""

from __future__ import annotations

from cute_attention.core.targets import has_pdl, sm_version
from cute_attention.kernels.abi import DTYPES
from cute_attention.kernels.prologue import Prologue
from cute_attention.kernels.shared_storage import storage_bytes


class AttentionKernelBase:
    """The fields both attention kernel bodies share; a body adds its threads, epilogue and shared storage."""

    def __init__(self, params, target: str):
        variant = params.variant
        self.params = params
        self.variant = variant
        self.target = target
        self.dtype = DTYPES[params.dtype]
        self.head_dim = params.head_dim
        self.mask = params.mask
        self.split_kv = params.split_kv
        self.varlen = params.varlen
        self.pdl = params.split_kv and has_pdl(target)
        self.pack_gqa = variant.pack_gqa
        self.kv_quant = variant.kv_quant
        if self.kv_quant is not None and self.kv_quant.kind in variant.impl.kv_quant_kinds:
            self.impl = variant.impl.build(self.dtype, self.head_dim, kv_quant=self.kv_quant)
        else:  # (an Impl without the format's dequant step: why_not_variant refuses it)
            self.impl = variant.impl.build(self.dtype, self.head_dim)
        self.mainloop = variant.mainloop
        self.kv_cache = variant.kv_cache
        self.cta_map = variant.cta_map.for_mask(params.mask)
        self.prologue = Prologue(params.q_ops)
        self.tile_m = self.impl.tile_m
        self.tile_n = self.impl.tile_n
        self.storage = None  # the body's shared-storage struct

    def smem_bytes(self) -> int:
        return storage_bytes(self.storage)

    def why_not_variant(self) -> str | None:
        """The variant's own limits: its dtypes and head dims; varlen batches read packed K/V, not a paged cache."""
        if self.varlen and self.kv_cache.paged:
            return f"varlen batches read packed K/V; variant {self.variant.name} reads a paged cache"
        fmt = self.kv_quant
        if fmt is not None:
            if fmt.kind not in self.variant.impl.kv_quant_kinds:
                return f"the {self.variant.impl.family} Impl has no {fmt.kind} dequant step"
            if not self.mainloop.kv_quant:
                return f"the {self.mainloop.name} mainloop does not move quantized K/V"
            if self.varlen:
                return "varlen batches read fp16/bf16 K/V, not a quantized cache"
            if fmt.kind == "fp8" and sm_version(self.target) < 89:
                return f"fp8 K/V needs the e4m3 conversions of sm_89 and newer, not {self.target}"
            if fmt.stored_cols(self.head_dim) % 16:
                return f"{fmt.kind} rows of head_dim {self.head_dim} are not a multiple of 16 bytes"
        if self.params.dtype not in self.variant.dtypes:
            return f"dtype {self.params.dtype} not in {self.variant.dtypes}"
        if self.head_dim not in self.variant.head_dims:
            return f"head_dim {self.head_dim} not in {self.variant.head_dims}"
        return None
