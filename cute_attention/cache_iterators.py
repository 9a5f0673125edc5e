"""Cache iterator factories: where the K/V tiles of one (batch, kv head) come from.

TurboMind's ``LinearIteratorFactory`` / ``BlockIteratorFactory``. The mainloop asks the factory for
a tiled global view ``(tile_n, head_dim, tiles)`` and indexes it by tile; a paged factory (block
table) plugs in behind the same call.
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass.cute as cute
from cutlass import Int32


@dataclass(frozen=True)
class LinearKVCache:
    """Contiguous K/V of shape ``(batch, seqlen_k, nheads_kv, head_dim)`` (any strides but the last)."""

    name: str = "linear"

    @staticmethod
    def tiles(m: cute.Tensor, batch: Int32, kv_head: Int32, tile_n: int, head_dim: int) -> cute.Tensor:
        # (tile_n, head_dim, tiles)
        return cute.local_tile(m[batch, None, kv_head, None], (tile_n, head_dim), (None, 0))
