"""Per-architecture building blocks (imports as ``cute_attention.arch``).

Shared: swizzled smem layouts (:mod:`.layouts`), thread maps (:mod:`.thread_map`), global-memory
iterators (:mod:`.gmem_iterator`), the warp-MMA Impl base (:mod:`.warp_mma_impl`).
Shared by every strategy: the three-phase walk (:mod:`.phases`).
Per generation: :mod:`.sm80` (m16n8k16 + cp.async multistage mainloop), :mod:`.sm75` (m16n8k8),
:mod:`.sm70` (synchronous register-staged mainloop).
"""
