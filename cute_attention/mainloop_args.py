"""What a mainloop strategy receives from the kernel object's prologue (the contract every strategy shares)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cute_attention.masks import MaskSpec


@dataclass(frozen=True)
class MainloopArgs:
    """Everything one CTA's mainloop reads (built by the kernel object's prologue)."""

    impl: Any
    st: Any  # ImplState
    softmax: Any
    acc_O: Any
    it: Any  # gmem iterator of K/V tiles
    k_part: Any  # CopyPartition of K tiles into the ring
    v_part: Any  # CopyPartition of V tiles into the ring
    sched: Any  # TileSchedule
    q_start: Any
    seqlen_q: Any
    seqlen_k: Any
    window_left: Any
    window_right: Any
    mask: MaskSpec
    group: Any = 1  # 1, or the query heads packed into the tile's rows (PackGQA; see index_math.query_positions)
