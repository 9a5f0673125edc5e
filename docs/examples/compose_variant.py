"""Compose your own kernel variant from the building blocks and call it on torch tensors.

Run it on a GPU machine: ``python docs/examples/compose_variant.py``. The test suite imports it: on
the CPU it compiles the variant and reads its SASS, on a GPU it also checks it against the reference.
"""

from cute_attention import AttnDesc, Registry, Variant, attention
from cute_attention.arch.sm80 import Mma16816, Sm80CpAsync
from cute_attention.kernels.cta_map import AttentionCtaMap
from cute_attention.kv import LinearKVCache

# 1. Pick one block of each kind.
my_variant = Variant(
    name="my_m64n64_w2x2_s3",
    # Impl: m16n8k16 tensor-core math; 2 warps split the 64 query rows, 2 warp groups split each
    # 64-key tile (each runs its own online softmax; the epilogue merges them through shared memory).
    impl=Mma16816(tile_m=64, tile_n=64, warps_q=2, warps_s=2),
    # Mainloop: a 3-slot cp.async ring (K and V tiles alternate through it).
    mainloop=Sm80CpAsync(stages=3),
    # Where K/V tiles come from, and how CTAs map to (query tile, head, batch).
    kv_cache=LinearKVCache(),
    cta_map=AttentionCtaMap(heavy_first=True),
    head_dims=(64, 128),
    spill_budget=96,  # at d128 this tile sits at 255 registers and spills a few values, like the registered w2x2
)

# 2. Optionally make it selectable by a dispatch rule, in your own registry or in cute_attention.REGISTRY.
my_registry = Registry()
my_registry.register(my_variant, when=lambda d: d.seqlen_q <= 256)


def run(q, k, v, causal=True):
    """3. Call it like ``attention``: the compile happens on first use and is cached by its key."""
    return attention(q, k, v, causal=causal, variant=my_variant)


def pick(head_dim: int, seqlen_q: int) -> Variant:
    return my_registry.find(AttnDesc(head_dim, "bfloat16", seqlen_q, 4096, True, False))


if __name__ == "__main__":
    import torch

    from cute_attention.tools.reference import tolerance_check

    q, k, v = (torch.randn(2, 200, 8, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    out = run(q, k, v)
    ok, err, bound = tolerance_check(out, q, k, v, causal=True)
    print(f"{my_variant.describe()}: max error {err:.2e} (bound {bound:.2e}) -> {'ok' if ok else 'FAIL'}")
