"""Per-architecture building blocks (imports as ``cute_attention.arch``).

Shared: swizzled smem layouts (:mod:`.layouts`), thread maps (:mod:`.thread_map`), global-memory
iterators (:mod:`.gmem_iterator`), the warp-MMA Impl base (:mod:`.warp_mma_impl`).
Per generation: :mod:`.sm80` (m16n8k16 + cp.async multistage mainloop).
"""
