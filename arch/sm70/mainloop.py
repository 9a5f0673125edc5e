"""Synchronous mainloop (TurboMind's ``Mainloop<Sm70, Impl>``): global → registers → shared, no cp.async.

Two shared-memory slots, K and V. The next tile's loads go into registers while the current tile
computes, then into shared memory:

    [K(t) in sK, V(t) loads in flight]  S = Q·K(t) ; softmax ; save V(t) -> sV ; barrier
    load K(t+1) -> registers ; O += P·V(t) ; save K(t+1) -> sK ; barrier ; load V(t+1) -> registers

Two barriers per tile, like the cp.async ring. The loads use only LDG/STS, so any loader with the
same ``load``/``save`` interface (e.g. one that also reads quantization parameters) plugs in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass
import cutlass.cute as cute
from cutlass import Int32

from cute_attention.arch.common.gmem_iterators import RegisterGmemIterator
from cute_attention.arch.common.thread_map import ACCESS_BITS
from cute_attention.core.contracts import MainloopArgs
from cute_attention.core.phase_walk import walk_phases

K_SLOT, V_SLOT = 0, 1


@dataclass(frozen=True)
class Sm70Sync:
    """Pipeline strategy: register-staged synchronous loads, one K and one V slot in shared memory."""

    name: str = "sync"
    warp_specialized = False
    kv_quant = True  # quantized K/V through the combined iterator (register path)
    sass_required = ("LDG.E.128", "STS.128")
    sass_forbidden = ("LDGSTS",)

    @property
    def stages(self) -> int:
        return 2

    @property
    def kv_slots(self) -> int:
        return 2

    def describe(self) -> str:
        return "synchronous, next tile staged in registers"

    def gmem_iterator(self, dtype, rows: int, cols: int, threads: int,
                      access_bits: int = ACCESS_BITS) -> RegisterGmemIterator:
        return RegisterGmemIterator(dtype, rows, cols, threads, access_bits)

    @cute.jit
    def load_q(self, it: RegisterGmemIterator, part, row_limit: Int32):
        frag = it.make_fragment(part)
        it.load(part, part.src, frag, row_limit, True)
        it.save(frag, part.dst)

    @cute.jit
    def wait_q(self):
        """Q's stores are synchronous: the caller's barrier suffices."""

    @cute.jit
    def load(self, a: MainloopArgs, part, frag: cute.Tensor, t, residue: cutlass.Constexpr):
        n = a.sched.n_hi - 1 - t
        a.it.load(part, part.src[None, None, None, n], frag, a.seqlen_k - n * a.impl.tile_n, residue)

    @cute.jit
    def step(self, a: MainloopArgs, t, mask: cutlass.Constexpr, is_first: cutlass.Constexpr,
             rK: cute.Tensor, rV: cute.Tensor):
        impl = a.impl
        has_next = t + 1 < a.sched.n_hi - a.sched.n_lo
        acc_S = impl.compute_qk(a.st, K_SLOT)
        if cutlass.const_expr(mask is not None):
            impl.mask_scores(a.st, acc_S, a.q_start, a.sched.n_hi - 1 - t, a.seqlen_q, a.seqlen_k,
                             a.window_left, a.window_right, mask, a.group)
        impl.softmax_step(a.softmax, acc_S, a.acc_O, is_first)
        tOrP = impl.convert_p(a.st, acc_S)
        a.it.save(rV, a.v_part.dst[None, None, None, V_SLOT])
        cute.arch.barrier()
        if has_next:
            self.load(a, a.k_part, rK, t + 1, False)
        impl.compute_pv(a.st, tOrP, a.acc_O, V_SLOT)
        if has_next:
            a.it.save(rK, a.k_part.dst[None, None, None, K_SLOT])
        cute.arch.barrier()
        if has_next:
            self.load(a, a.v_part, rV, t + 1, False)

    @cute.jit
    def run(self, a: MainloopArgs):
        total = a.sched.n_hi - a.sched.n_lo
        if total > 0:
            rK = a.it.make_fragment(a.k_part)
            rV = a.it.make_fragment(a.v_part)
            self.load(a, a.k_part, rK, 0, True)
            a.it.save(rK, a.k_part.dst[None, None, None, K_SLOT])
            self.load(a, a.v_part, rV, 0, True)
            cute.arch.barrier()
            walk_phases(self, a, rK, rV)
