"""What every attention kernel body reads off its parameter record: the variant's blocks built for one dtype and
head dim, the flags of the launch, and the checks every body makes before it compiles.

Both bodies (:class:`~cute_attention.kernels.attention.AttentionKernel`, every warp loading and computing, and
:class:`~cute_attention.kernels.attention_ws.AttentionKernelWS`, Hopper's producer / consumer roles) derive from
:class:`AttentionKernelBase`, so a new field of the record or the variant is read in one place.
"""

from __future__ import annotations

from cute_attention.core.targets import has_pdl
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
        if self.params.dtype not in self.variant.dtypes:
            return f"dtype {self.params.dtype} not in {self.variant.dtypes}"
        if self.head_dim not in self.variant.head_dims:
            return f"head_dim {self.head_dim} not in {self.variant.head_dims}"
        return None
