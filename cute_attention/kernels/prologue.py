"""The prologue slot: rows on their way from global to shared memory pass through registers, where ops may run.

TurboMind's attention prologue loads Q and, in the same pass, applies RoPE, bias or log-n scaling, and its KV
append quantizes new K/V before writing them to the cache. This module is that slot, without ops yet: a kernel
object's :class:`Prologue` moves Q global → registers → ``ops`` → shared memory when it has ops, and otherwise
leaves the move to the mainloop strategy's own path (cp.async straight to shared memory for the Sm80 ring), so the
default build is unchanged. The KV append kernel runs the same ops on each new token's vectors. An op is a
:class:`~cute_attention.core.contracts.RowOp`: it sees the thread's values, their (row, col) coordinates and a
record of what the rows are (:class:`QRows`, :class:`TokenRows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute

from cute_attention.arch.common.gmem_iterators import RegisterGmemIterator
from cute_attention.core.contracts import RowOp


@dataclass(frozen=True)
class QRows:
    """What the rows of a query tile are: tile row ``r`` is row ``q_start + r`` of ``rows_q`` (with PackGQA
    ``group > 1``: token ``(q_start + r) // group`` of head ``head * group + (q_start + r) % group``, else token
    ``q_start + r`` of ``head``); query token ``t`` sits at key position ``t + seqlen_k - seqlen_q``."""

    q_start: Any
    rows_q: Any
    seqlen_q: Any
    seqlen_k: Any
    group: Any
    head: Any
    batch: Any


@dataclass(frozen=True)
class TokenRows:
    """What a KV append's rows are: new token ``token`` of sequence ``batch``, at position ``pos`` of its cache;
    coordinates are (KV head, column)."""

    batch: Any
    token: Any
    pos: Any


@cute.jit
def apply_ops(ops: cutlass.Constexpr, frag: cute.Tensor, coords: cute.Tensor, where):
    """Run ``ops`` in order on the register values ``frag`` (coordinates ``coords``, same shape)."""
    for i in cutlass.range_constexpr(len(ops)):
        ops[i].apply(frag, coords, where)


@dataclass(frozen=True)
class Prologue:
    """How Q reaches shared memory: ``ops`` (frozen :class:`RowOp` objects, part of the compile key) run on it in
    registers on the way; without ops the mainloop strategy moves it by its own path."""

    ops: tuple[RowOp, ...] = ()

    @cute.jit
    def load_q(self, mainloop, tidx, gQ, sQ: cute.Tensor, rows: QRows, dtype: cutlass.Constexpr,
               tile_m: cutlass.Constexpr, head_dim: cutlass.Constexpr, threads: cutlass.Constexpr,
               packed: cutlass.Constexpr):
        """Start moving the Q tile ``gQ`` (a ``(tile_m, head_dim)`` view, or with ``packed`` a row source) to
        ``sQ``; rows past ``rows.rows_q`` are written as zeros. The strategy's ``wait_q`` and a barrier make it
        visible."""
        row_limit = rows.rows_q - rows.q_start
        if cutlass.const_expr(len(self.ops) == 0):
            it = mainloop.gmem_iterator(dtype, tile_m, head_dim, threads)
            mainloop.load_q(it, it.partition(tidx, gQ, sQ, src_rows=packed), row_limit)
        else:
            self.load_q_through_registers(tidx, gQ, sQ, rows, dtype, tile_m, head_dim, threads, packed)

    @cute.jit
    def load_q_through_registers(self, tidx, gQ, sQ: cute.Tensor, rows: QRows, dtype: cutlass.Constexpr,
                                 tile_m: cutlass.Constexpr, head_dim: cutlass.Constexpr, threads: cutlass.Constexpr,
                                 packed: cutlass.Constexpr):
        """Q global → registers → ``ops`` → ``sQ`` by ``threads`` threads (rows past ``rows.rows_q`` as zeros); the
        stores are plain shared-memory stores, visible after the caller's barrier."""
        it = RegisterGmemIterator(dtype, tile_m, head_dim, threads)
        part = it.partition(tidx, gQ, sQ, src_rows=packed)
        # (CPY, CPY_ROWS, CPY_COLS) Q in registers
        rQ = it.make_fragment(part)
        it.load(part, part.src, rQ, rows.rows_q - rows.q_start, True)
        apply_ops(self.ops, rQ, part.coords, rows)
        it.save(rQ, part.dst)
