"""Multistage cp.async mainloop (TurboMind's ``Mainloop<Sm80_CpAsync<Stages>, Impl>``).

Shared memory holds a ring of ``stages`` slots, each one K or V tile; loads alternate
K(t), V(t), K(t+1), ... where ``t`` walks the KV tiles from the last one down. Load ``j`` lives in
slot ``j % stages``. ``stages - 1`` loads are in flight when load ``j`` is consumed:

    wait until load j landed (cp.async.wait_group stages-2) ; barrier
    issue load j + stages - 1 into the slot load j - 1 used (every thread is past it)
    compute on load j

One barrier per load, as in FlashAttention-2 for ``stages = 2``. With ``locate_ahead`` a row source whose rows
are located by reads (a paged cache) reads its block table one load ahead: right after V of a tile is issued, the
reads for the next tile start (into registers, shared by its K and V), so the next issue finds them landed
instead of stalling on a dependent read after the barrier, and the table is read once per tile. The walk has three
phases: ``back`` tiles masked by the right bound / seqlen_k, ``mid`` unmasked tiles, ``front`` tiles masked by the
sliding window's left bound; the first tile is peeled (full mask, no rescale of O).
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.arch.common.gmem_iterators import CpAsyncGmemIterator
from cute_attention.arch.common.thread_map import ACCESS_BITS
from cute_attention.core.contracts import MainloopArgs
from cute_attention.core.phase_walk import walk_phases


@dataclass(frozen=True)
class Sm80CpAsync:
    """Pipeline strategy: ``stages``-deep ring of cp.async K/V loads (``stages >= 2``)."""

    stages: int = 2
    name: str = "cpasync"
    locate_ahead: bool = False  # row sources: the next tile's block-table reads one load ahead
    warp_specialized = False  # every warp loads and computes (the kernel body of kernels/attention.py)
    kv_quant = True  # quantized K/V through the combined iterator
    sass_required = ("LDGSTS",)
    sass_forbidden = ()

    def __post_init__(self):
        if self.stages < 2:
            raise ValueError(f"stages must be >= 2, got {self.stages}")

    @property
    def kv_slots(self) -> int:
        return self.stages

    def describe(self) -> str:
        return f"cp.async ring of {self.stages}" + (", block table read a tile ahead" if self.locate_ahead else "")

    def gmem_iterator(self, dtype, rows: int, cols: int, threads: int,
                      access_bits: int = ACCESS_BITS) -> CpAsyncGmemIterator:
        return CpAsyncGmemIterator(dtype, rows, cols, threads, access_bits)

    @cute.jit
    def load_q(self, it: CpAsyncGmemIterator, part, row_limit: Int32):
        it.prefetch(part, part.src, part.dst, row_limit, True)
        cute.arch.cp_async_commit_group()

    # ---- loads ----
    def locates_ahead(self, a: MainloopArgs) -> bool:
        """Whether this walk reads the block table ahead (``locate_ahead`` and K/V from a row source with reads)."""
        return self.locate_ahead and a.k_part.source_reads

    @cute.jit
    def locate(self, a: MainloopArgs, j_tile, keys: cute.Tensor):
        """Start the table reads of walk step ``j_tile`` (past the walk: of tile 0, never copied)."""
        n = cutlass.max(a.sched.n_hi - 1 - j_tile, 0)
        a.k_part.src.locate(n, a.seqlen_k - n * a.impl.tile_n, a.impl.tile_n, keys)

    @cute.jit
    def issue(self, a: MainloopArgs, j_tile, is_v: cutlass.Constexpr, slot, residue: cutlass.Constexpr,
              keys=None):
        """Start the copy of K (or V) of walk step ``j_tile`` into ``slot``; nothing past the last tile. With
        ``keys`` (table reads of this step, issued earlier) the tile is built from them, and after V the next
        step's reads start."""
        part = a.v_part if cutlass.const_expr(is_v) else a.k_part
        total = a.sched.n_hi - a.sched.n_lo
        if j_tile < total:
            n = a.sched.n_hi - 1 - j_tile
            row_limit = a.seqlen_k - n * a.impl.tile_n
            src = part.src[None, None, None, n]
            if cutlass.const_expr(keys is not None):
                src = part.src.located_tile(n, row_limit, a.impl.tile_n, keys)
            a.it.prefetch(part, src, part.dst[None, None, None, slot], row_limit, residue)
        if cutlass.const_expr(keys is not None and is_v):
            self.locate(a, j_tile + 1, keys)

    def slot_of(self, t, offset: int):
        """Ring slot of load ``2t + offset``; compile-time when ``t`` is or ``stages`` makes it so."""
        if isinstance(t, int):
            return (2 * t + offset) % self.stages
        if self.stages == 2:
            return offset % 2
        return (2 * t + offset) % self.stages

    def refill_plan(self, t, consumed: int):
        """The load issued when load ``2t + consumed`` is consumed: (walk step, is V, slot, residue)."""
        ahead = consumed + self.stages - 1
        j_tile = t + ahead // 2
        residue = isinstance(t, int) and t + ahead // 2 == 0
        return j_tile, ahead % 2 == 1, self.slot_of(t, ahead), residue

    @cute.jit
    def wait_and_issue(self, a: MainloopArgs, t, consumed: cutlass.Constexpr, keys=None):
        """Load ``2t + consumed`` is about to be consumed: wait for it, then refill the ring."""
        cute.arch.cp_async_wait_group(self.stages - 2)
        cute.arch.barrier()
        j_tile, is_v, slot, residue = self.refill_plan(t, consumed)
        self.issue(a, j_tile, is_v, slot, residue, keys)
        cute.arch.cp_async_commit_group()

    # ---- one KV tile ----
    @cute.jit
    def step(self, a: MainloopArgs, t, mask: cutlass.Constexpr, is_first: cutlass.Constexpr, keys=None):
        impl = a.impl
        self.wait_and_issue(a, t, 0, keys)
        acc_S = impl.compute_qk(a.st, self.slot_of(t, 0))
        if cutlass.const_expr(mask is not None):
            impl.mask_scores(a.st, acc_S, a.q_start, a.sched.n_hi - 1 - t, a.seqlen_q, a.seqlen_k,
                             a.window_left, a.window_right, mask, a.group)
        impl.softmax_step(a.softmax, acc_S, a.acc_O, is_first)
        tOrP = impl.convert_p(a.st, acc_S)
        self.wait_and_issue(a, t, 1, keys)
        impl.compute_pv(a.st, tOrP, a.acc_O, self.slot_of(t, 1))

    @cute.jit
    def wait_q(self):
        """Block until this thread's Q copies landed (before Q's fragments are read into registers)."""
        cute.arch.cp_async_wait_group(0)

    @cute.jit
    def run(self, a: MainloopArgs):
        total = a.sched.n_hi - a.sched.n_lo
        if total > 0:
            keys = None
            if cutlass.const_expr(self.locates_ahead(a)):
                keys = a.k_part.src.make_keys()  # (CPY_ROWS,) block ids of the next tile's rows
                self.locate(a, 0, keys)
            for j in cutlass.range_constexpr(self.stages - 1):
                self.issue(a, j // 2, j % 2 == 1, j, j < 2, keys)
                cute.arch.cp_async_commit_group()
            walk_phases(self, a, keys)
        cute.arch.cp_async_wait_group(0)
