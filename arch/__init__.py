"""Per-generation building blocks (imports as ``cute_attention.arch``).

One folder per generation whose algorithm a block implements: :mod:`.sm80` (m16n8k16 + the multistage cp.async
mainloop), :mod:`.sm75` (m16n8k8), :mod:`.sm70` (the synchronous register-staged mainloop, m8n8k4 through inline
PTX). Blocks no generation owns live in :mod:`.common`, named by role: shared-memory layouts, thread maps,
global-memory iterators, the two Impl bases (fragment operands with P in registers; shared-memory operands with P
through shared memory), the SIMT Impl and the cross-warp merge. Everything here compiles for sm_80 and newer.
"""
