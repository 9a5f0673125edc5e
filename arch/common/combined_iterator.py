"""The combined iterator (TurboMind's ``CombinedIterator``): a quantized cache's data mover and its (scale, zero)
mover behind the one gmem-iterator interface the mainloops use.

A mainloop only ever calls ``partition``, then per tile ``prefetch`` (cp.async) or ``make_fragment`` / ``load`` /
``save`` (register path), and indexes ``part.src`` / ``part.dst`` by tile and slot; with a paged cache it also
reads ``part.src``'s block table ahead (``make_keys`` / ``locate`` / ``located_tile``). Here each of those acts on
a :class:`Pair` (data, params), so both mainloops take quantized K/V without a line of their own changing. The two
tiles share their rows (a page of data and its parameters sit at one block index) but not their thread maps: data
rows move in 16-byte vectors, a row's parameter pair in one 4- or 8-byte copy by one of the first ``tile_n``
threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.arch.common.gmem_iterators import CopyPartition


@dataclass(frozen=True)
class Pair:
    """Two views indexed together: a K (or V) data tile and the same rows' parameters. Row sources (a paged cache)
    pass the block-table reads through: the keys are a pair too."""

    data: Any
    params: Any

    def __getitem__(self, idx) -> Pair:
        return Pair(self.data[idx], self.params[idx])

    def make_keys(self) -> tuple:
        return self.data.make_keys(), self.params.make_keys()

    @cute.jit
    def locate(self, n, row_limit, tile_rows: cutlass.Constexpr, keys: tuple):
        self.data.locate(n, row_limit, tile_rows, keys[0])
        self.params.locate(n, row_limit, tile_rows, keys[1])

    def located_tile(self, n, row_limit, tile_rows: int, keys: tuple) -> Pair:
        return Pair(self.data.located_tile(n, row_limit, tile_rows, keys[0]),
                    self.params.located_tile(n, row_limit, tile_rows, keys[1]))


@dataclass(frozen=True)
class CombinedPartition:
    """A thread's share of both tiles; ``active``: this thread copies a parameter row."""

    data: CopyPartition
    params: CopyPartition
    active: Any

    @property
    def src(self) -> Pair:
        return Pair(self.data.src, self.params.src)

    @property
    def dst(self) -> Pair:
        return Pair(self.data.dst, self.params.dst)

    @property
    def source_reads(self) -> bool:
        return self.data.source_reads


@dataclass(frozen=True)
class CombinedFragment:
    """Register staging of both tiles (register path) and whether this thread holds a parameter row."""

    data: Any
    params: Any
    active: Any


class CombinedIterator:
    """``data`` moves the quantized tile ``(rows, stored cols)``, ``params`` the ``(rows, 2)`` parameter tile
    with ``rows`` threads (the first ``rows`` of the CTA)."""

    def __init__(self, data, params):
        self.data = data
        self.params = params
        self.param_threads = params.thread_map.threads

    @cute.jit
    def partition(self, tidx: Int32, src: Pair, dst: Pair, src_rows: cutlass.Constexpr = False,
                  dst_rows: cutlass.Constexpr = False) -> CombinedPartition:
        data = self.data.partition(tidx, src.data, dst.data, src_rows, dst_rows)
        params = self.params.partition(tidx % self.param_threads, src.params, dst.params, src_rows, dst_rows)
        return CombinedPartition(data, params, tidx < self.param_threads)

    # ---- cp.async path (Sm80CpAsync) ----
    @cute.jit
    def prefetch(self, part: CombinedPartition, src: Pair, dst: Pair, row_limit: Int32,
                 predicate_rows: cutlass.Constexpr):
        self.data.prefetch(part.data, src.data, dst.data, row_limit, predicate_rows)
        if part.active:
            self.params.prefetch(part.params, src.params, dst.params, row_limit, predicate_rows)

    # ---- register path (Sm70Sync) ----
    def make_fragment(self, part: CombinedPartition) -> CombinedFragment:
        return CombinedFragment(self.data.make_fragment(part.data), self.params.make_fragment(part.params),
                                part.active)

    @cute.jit
    def load(self, part: CombinedPartition, src: Pair, frag: CombinedFragment, row_limit: Int32,
             predicate_rows: cutlass.Constexpr):
        self.data.load(part.data, src.data, frag.data, row_limit, predicate_rows)
        if part.active:
            self.params.load(part.params, src.params, frag.params, row_limit, predicate_rows)

    @cute.jit
    def save(self, frag: CombinedFragment, dst: Pair):
        self.data.save(frag.data, dst.data)
        if frag.active:
            self.params.save(frag.params, dst.params)
