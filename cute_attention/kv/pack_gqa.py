"""PackGQA rows: every query head of one KV head packed into a tile's M (FlashAttention-3's PackGQA, TurboMind's
decode CTA serving ``CTA_H`` heads), so each K/V tile is read once per group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass.cute as cute
from cutlass import Int32

from cute_attention.kv.row_source import row_view


@dataclass(frozen=True)
class PackedRows:
    """PackGQA rows of one (batch, KV head), a row source: tile row ``r`` of the tile at ``row_start`` is token
    ``(row_start + r) // group`` of query head ``head0 + (row_start + r) % group``.

    ``m3`` is ``(seqlen_q, nheads, d)`` (Q or O of one batch); ``rows``/``cols`` are the tile's extent.
    """

    m3: Any
    row_start: Any
    group: Any
    head0: Any
    rows: int
    cols: int
    reads = False  # a row's address is arithmetic on the tile row: nothing to read ahead

    def coords(self, rel: Int32) -> tuple[Int32, Int32]:
        """(token, head) of tile row ``rel``."""
        r = self.row_start + rel
        return r // self.group, self.head0 + r % self.group

    def locate(self, n, rel: Int32) -> None:
        """No reads: :meth:`view` computes the address."""
        return None

    @cute.jit
    def view(self, n, rel: Int32, key) -> cute.Tensor:
        """A ``(rows, cols)`` view whose every row is tile row ``rel``'s (token, head) row."""
        token, head = self.coords(rel)
        return row_view(self.m3[token, head, None].iterator, self.rows, self.cols)
