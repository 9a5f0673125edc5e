"""Fragment Impl: warp-MMA families whose operands reach registers by ``ldmatrix`` and whose P stays in registers.

The base of the m16n8k16 (Sm80) and m16n8k8 (Sm75) Impls (TurboMind's ``Impl<MMA_16816 / MMA_1688, ...>``): Q, K
and V are read from the swizzled shared tiles by ``ldmatrix`` into MMA fragments, and the accumulators of S are
reused, converted, as the A fragments of P·V (no trip through shared memory; compare
:mod:`~cute_attention.arch.common.shared_operand_impl`). A family module supplies the MMA atom's K, the N × K
extent one ``ldmatrix.x4`` covers and the SASS form it promises.

An Impl owns fragment shapes, the shared-memory layouts it reads, and the per-tile math:
``compute_qk`` (S = Q·Kᵀ), the online softmax over the accumulator's rows, ``convert_p``,
``compute_pv`` (O += P·V), ``merge`` (warps that split the KV tile combine their partial M, L, O)
and ``store_o``. It knows nothing of where tiles come from or how loads are pipelined.

Warps are arranged ``warps_q × warps_s``: ``warps_q`` warps split the query rows, ``warps_s``
groups of them each take a contiguous ``tile_n / warps_s`` slice of every KV tile and run their
own online softmax; ``merge`` reduces the groups through shared memory at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32
from cutlass.cute.nvgpu import warp

from cute_attention.arch.common.kv_dequant import KVDequant, QuantOperand
from cute_attention.arch.common.smem_layouts import smem_tile, transposed_view
from cute_attention.arch.common.warp_merge import WARP, WarpGroupImpl
from cute_attention.core.masks import apply_mask
from cute_attention.core.softmax import OnlineSoftmax


@dataclass(frozen=True)
class FragmentTiles:
    """Tuning choices of a fragment Impl (hashable: part of the compile key); a family's recipe adds ``family``
    and ``build``."""

    tile_m: int = 128
    tile_n: int = 64
    warps_q: int = 4
    warps_s: int = 1
    # lazy rescale of O (log2 units, see OnlineSoftmax); None rescales on every tile. On the H100 the lazy
    # form is faster at d128 (with ldsm_ahead) and slower at d64 (docs/benchmarks.md), so it is a per-variant choice.
    rescale_threshold: float | None = None
    # operand pipeline in registers: None loads the ldmatrix fragments of k-block k+1 while k-block k computes;
    # an int n issues each ldmatrix n copies ahead of the MMAs that read it, so only about n copies' worth of
    # K/V fragments is live at a time (fewer registers at 32 query rows per warp).
    ldsm_ahead: int | None = None
    # keep Q's MMA fragments in registers for the whole mainloop (loaded once); its shared memory is then
    # free and the kernel overlaps it with the K/V ring (TurboMind's Sm70/Sm75 smem union)
    q_in_regs: bool = False
    # quantized KV formats whose dequant step the Impl has (:mod:`~cute_attention.arch.common.kv_dequant`)
    kv_quant_kinds = ("int8", "int4", "fp8")

    @property
    def threads(self) -> int:
        return self.warps_q * self.warps_s * WARP

    def describe(self) -> str:
        """Tiles and knobs in words (the catalogue's description)."""
        return (f"{self.family} tile {self.tile_m}x{self.tile_n} warps {self.warps_q}x{self.warps_s}"
                + (f", lazy rescale 2^{self.rescale_threshold:g}" if self.rescale_threshold is not None else "")
                + (f", ldsm {self.ldsm_ahead} ahead" if self.ldsm_ahead is not None else "")
                + (", Q in registers" if self.q_in_regs else ""))


@dataclass(frozen=True)
class FragmentState:
    """Per-thread partitions built once per CTA (CuTe naming: tSrQ = thread partition for S, in registers)."""

    tq: Any  # thread index inside its warp_s group
    ws: Any  # warp_s group of this thread
    thr_mma: Any
    tSrQ: Any  # (MMA, MMA_M, MMA_K) Q fragments
    tSrK: Any  # (MMA, MMA_N, MMA_K) K fragments
    tOrVt: Any  # (MMA, MMA_D, MMA_KV) V fragments
    tSsQ: Any  # (CPY, CPY_M, CPY_K) ldmatrix source view of sQ
    tSsK: Any  # (CPY, CPY_N, CPY_K, slot) ldmatrix source view of this group's K rows, every ring slot
    tOsVt: Any  # (CPY, CPY_D, CPY_KV, slot) ldmatrix (transposed) source view of V
    copy_Q: Any
    copy_K: Any
    copy_V: Any
    tScS_mn: Any  # (rows, cols) tile coordinates of this thread's scores
    t0ScS_mn: Any  # the same for thread 0 (compile-time columns)
    tOcO_mn: Any  # (rows, cols) tile coordinates of this thread's outputs
    quant_K: QuantOperand | None = None  # a quantized cache's K partitions (then tSsK, copy_K are None)
    quant_V: QuantOperand | None = None  # ... and V's


class FragmentImpl(WarpGroupImpl):
    """Attention math on ``mma.sync`` m16n8k{K} tensor-core atoms with ldmatrix operand loads (a family subclass
    sets ``mma_k``, ``perm_nk``, ``name`` and ``mma_sass``)."""

    mma_k: int  # K of the MMA atom
    # (N, K) extent of the tiled MMA: one ldmatrix.x4 of a B operand covers perm_n × perm_k
    perm_nk: tuple[int, int]
    name: str
    # SASS the catalogue checks for: every MMA is this form; operands arrive through ldmatrix
    mma_sass: str
    sass_required = ("LDSM",)
    sass_forbidden: tuple[str, ...] = ()

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, tiles: FragmentTiles, kv_quant=None):
        super().__init__(dtype, head_dim, tiles)
        self.ldsm_ahead = tiles.ldsm_ahead
        self.q_in_regs = tiles.q_in_regs
        # a quantized cache: K/V operands are read from its byte tiles and dequantized in registers
        self.dequant = KVDequant(kv_quant, dtype, self.tile_n, head_dim) if kv_quant is not None else None
        self.check_tiles()

    # ---- static checks and sizes (host side, plain Python) ----
    def check_tiles(self) -> None:
        m_step = self.warps_q * 16
        if self.tile_m % m_step:
            raise ValueError(f"tile_m={self.tile_m} must be a multiple of warps_q*16={m_step}")
        if self.tile_n % self.warps_s or self.slice_n % 16:
            raise ValueError(f"tile_n/warps_s must be a multiple of 16 (tile_n={self.tile_n})")
        if self.head_dim % 16:
            raise ValueError(f"head_dim must be a multiple of 16, got {self.head_dim}")
        if self.ldsm_ahead is not None and self.ldsm_ahead < 1:
            raise ValueError(f"ldsm_ahead must be None or >= 1, got {self.ldsm_ahead}")
        perm_n, _ = self.perm_nk
        if self.slice_n % perm_n or self.head_dim % perm_n:
            raise ValueError(f"tile_n/warps_s and head_dim must be multiples of {perm_n} for {self.name}")
        if self.q_in_regs and self.warps_s > 1:
            raise ValueError("q_in_regs needs warps_s == 1 (the warp merge reuses the shared memory Q leaves)")

    def scratch_bytes(self) -> int:
        """Shared memory the Impl needs besides Q and the K/V ring (none: P stays in registers)."""
        return 0

    # ---- compile-time objects ----
    def tiled_mma(self) -> cute.TiledMma:
        op = warp.MmaF16BF16Op(self.dtype, Float32, (16, 8, self.mma_k))
        return cute.make_tiled_mma(op, (self.warps_q, 1, 1), permutation_mnk=(self.warps_q * 16, *self.perm_nk))

    def q_tile(self, ptr: cute.Pointer) -> cute.Tensor:
        """(tile_m, head_dim) Q tile in shared memory (reused for O)."""
        return smem_tile(ptr, self.dtype, self.tile_m, self.head_dim)

    def kv_slot_bytes(self) -> int:
        """Shared memory of one K/V ring slot."""
        if self.dequant is not None:
            return self.dequant.slot_bytes()
        return self.tile_n * self.head_dim * self.dtype.width // 8

    def kv_ring(self, ptr: cute.Pointer, slots: int):
        """(tile_n, head_dim, slots) ring of K/V tiles in shared memory (a quantized cache's byte tiles and
        parameters: :meth:`~cute_attention.arch.common.kv_dequant.KVDequant.ring`)."""
        if self.dequant is not None:
            return self.dequant.ring(ptr, slots)
        return smem_tile(ptr, self.dtype, self.tile_n, self.head_dim, slots)

    # ---- per-CTA setup ----
    @cute.jit
    def make_state(self, tidx: Int32, sQ: cute.Tensor, sKV: cute.Tensor, scratch: cute.Pointer | None) -> FragmentState:
        tiled_mma = self.tiled_mma()
        tq = tidx % self.group_threads
        ws = tidx // self.group_threads
        if cutlass.const_expr(self.dequant is not None):
            return self.make_quant_state(tidx, sQ, sKV)
        if cutlass.const_expr(self.warps_s > 1):
            # (slice_n, D, slot): this group's rows of every K/V ring slot
            sKV = cute.local_tile(sKV, (self.slice_n, self.head_dim, sKV.shape[2]), (ws, 0, 0))
        sVt = transposed_view(sKV)
        thr_mma = tiled_mma.get_slice(tq)
        tSrQ = thr_mma.make_fragment_A(thr_mma.partition_A(sQ))
        tSrK = thr_mma.make_fragment_B(thr_mma.partition_B(sKV[None, None, 0]))
        tOrVt = thr_mma.make_fragment_B(thr_mma.partition_B(sVt[None, None, 0]))
        ldsm = warp.LdMatrix8x8x16bOp(transpose=False, num_matrices=4)
        ldsm_t = warp.LdMatrix8x8x16bOp(transpose=True, num_matrices=4)
        # A (16 rows × perm_k per warp) holds perm_k / 4 8x8 matrices
        ldsm_a = warp.LdMatrix8x8x16bOp(transpose=False, num_matrices=self.perm_nk[1] // 4)
        copy_Q = cute.make_tiled_copy_A(cute.make_copy_atom(ldsm_a, self.dtype), tiled_mma).get_slice(tq)
        copy_K = cute.make_tiled_copy_B(cute.make_copy_atom(ldsm, self.dtype), tiled_mma).get_slice(tq)
        copy_V = cute.make_tiled_copy_B(cute.make_copy_atom(ldsm_t, self.dtype), tiled_mma).get_slice(tq)
        cS = cute.make_identity_tensor((self.tile_m, self.slice_n))
        cO = cute.make_identity_tensor((self.tile_m, self.head_dim))
        return FragmentState(
            tq=tq,
            ws=ws,
            thr_mma=thr_mma,
            tSrQ=tSrQ,
            tSrK=tSrK,
            tOrVt=tOrVt,
            tSsQ=copy_Q.partition_S(sQ),
            tSsK=copy_K.partition_S(sKV),
            tOsVt=copy_V.partition_S(sVt),
            copy_Q=copy_Q,
            copy_K=copy_K,
            copy_V=copy_V,
            tScS_mn=self.rows_cols_view(thr_mma.partition_C(cS)),
            t0ScS_mn=self.rows_cols_view(tiled_mma.get_slice(0).partition_C(cS)),
            tOcO_mn=self.rows_cols_view(thr_mma.partition_C(cO)),
        )

    def make_quant_state(self, tidx: Int32, sQ: cute.Tensor, ring) -> FragmentState:
        """:meth:`make_state` over a quantized ring: K/V fragments are filled by the dequant step, Q's as usual."""
        tiled_mma = self.tiled_mma()
        tq = tidx % self.group_threads
        ws = tidx // self.group_threads
        thr_mma = tiled_mma.get_slice(tq)
        ops = []
        for transposed in (False, True):
            views = self.dequant.operand_views(ring, transposed)
            sliced = []
            for view in views:
                if cutlass.const_expr(view is not None and self.warps_s > 1):
                    # this group's rows of every slot
                    slots = cute.size(view.shape[2])
                    tiler = (self.head_dim, self.slice_n, slots) if transposed else (self.slice_n, self.head_dim, slots)
                    view = cute.local_tile(view, tiler, (0, ws, 0) if transposed else (ws, 0, 0))
                sliced.append(view)
            shape = (self.head_dim, self.slice_n) if transposed else (self.slice_n, self.head_dim)
            # (MMA, MMA_N, MMA_K, slot) partitions of data, scale, zero; (MMA, MMA_N, MMA_K) coordinates
            q, scale, zero = (thr_mma.partition_B(v) if v is not None else None for v in sliced)
            coords = thr_mma.partition_B(cute.make_identity_tensor(shape))
            ops.append(QuantOperand(q, scale, zero, coords))
        ldsm_a = warp.LdMatrix8x8x16bOp(transpose=False, num_matrices=self.perm_nk[1] // 4)
        copy_Q = cute.make_tiled_copy_A(cute.make_copy_atom(ldsm_a, self.dtype), tiled_mma).get_slice(tq)
        cS = cute.make_identity_tensor((self.tile_m, self.slice_n))
        cO = cute.make_identity_tensor((self.tile_m, self.head_dim))
        return FragmentState(
            tq=tq,
            ws=ws,
            thr_mma=thr_mma,
            tSrQ=thr_mma.make_fragment_A(thr_mma.partition_A(sQ)),
            tSrK=cute.make_rmem_tensor(thr_mma.partition_shape_B((self.slice_n, self.head_dim)), self.dtype),
            tOrVt=cute.make_rmem_tensor(thr_mma.partition_shape_B((self.head_dim, self.slice_n)), self.dtype),
            tSsQ=copy_Q.partition_S(sQ),
            tSsK=None,
            tOsVt=None,
            copy_Q=copy_Q,
            copy_K=None,
            copy_V=None,
            tScS_mn=self.rows_cols_view(thr_mma.partition_C(cS)),
            t0ScS_mn=self.rows_cols_view(tiled_mma.get_slice(0).partition_C(cS)),
            tOcO_mn=self.rows_cols_view(thr_mma.partition_C(cO)),
            quant_K=ops[0],
            quant_V=ops[1],
        )

    @cute.jit
    def load_q_regs(self, st: FragmentState):
        """Q_in_regs: read every k-block of Q's fragments from shared memory once (Q must have landed)."""
        cute.copy(st.copy_Q, st.tSsQ, st.copy_Q.retile(st.tSrQ))

    def partition_O(self, st: FragmentState, t: cute.Tensor) -> cute.Tensor:
        """This thread's elements of a ``(tile_m, head_dim)`` tensor, in ``acc_O``'s order."""
        return st.thr_mma.partition_C(t)

    @cute.jit
    def make_acc_O(self, st: FragmentState) -> cute.Tensor:
        acc_O = cute.make_rmem_tensor(st.thr_mma.partition_shape_C((self.tile_m, self.head_dim)), Float32)
        acc_O.fill(0.0)
        return acc_O

    def make_softmax(self, scale_log2: Float32, acc_O: cute.Tensor) -> OnlineSoftmax:
        return OnlineSoftmax(scale_log2, cute.size(self.rows_cols_view(acc_O).shape[0]), row_lanes=(2, 1),
                             rescale_threshold=self.rescale_threshold)

    # ---- layout views of the m16n8 accumulator ----
    @staticmethod
    def rows_cols_view(acc: cute.Tensor) -> cute.Tensor:
        """View an accumulator ``((2, 2), MMA_M, MMA_N)`` as ``((2, MMA_M), (2, MMA_N))`` rows × cols."""
        shape = acc.layout.shape
        compact = cute.make_layout(shape)
        view = cute.make_layout(
            ((shape[0][1], shape[1]), (shape[0][0], shape[2])),
            stride=((compact.stride[0][1], compact.stride[1]), (compact.stride[0][0], compact.stride[2])),
        )
        return cute.make_tensor(acc.iterator, cute.composition(acc.layout, view))

    def p_as_operand_a(self, rP: cute.Tensor) -> cute.Tensor:
        """Reuse the m16n8 accumulators of P as m16n8k{K} A operands: K/8 adjacent N atoms form one K atom."""
        group = self.mma_k // 8
        if group == 1:
            return rP
        div = cute.logical_divide(rP.layout, (None, None, group))
        frag = cute.make_layout(
            ((div.shape[0], div.shape[2][0]), div.shape[1], div.shape[2][1]),
            stride=((div.stride[0], div.stride[2][0]), div.stride[1], div.stride[2][1]),
        )
        return cute.make_tensor(rP.iterator, frag)

    # ---- per-tile math ----
    @cute.jit
    def compute_qk(self, st: FragmentState, slot: Int32) -> cute.Tensor:
        """S = Q·Kᵀ for this group's KV slice, K read from ring ``slot``; ldmatrix runs ahead of the MMAs."""
        acc_S = cute.make_rmem_tensor(st.thr_mma.partition_shape_C((self.tile_m, self.slice_n)), Float32)
        acc_S.fill(0.0)
        if cutlass.const_expr(st.quant_K is not None):
            self.quant_gemm(acc_S, st.tSrQ, st.tSrK, st.quant_K, slot, 1,
                            None if self.q_in_regs else (st.copy_Q, st.tSsQ, st.copy_Q.retile(st.tSrQ)))
            return acc_S
        tSsK = st.tSsK[None, None, None, slot]
        a_copy = None if self.q_in_regs else (st.copy_Q, st.tSsQ, st.copy_Q.retile(st.tSrQ))
        self.operand_gemm(acc_S, st.tSrQ, st.tSrK, (st.copy_K, tSsK, st.copy_K.retile(st.tSrK)), a_copy=a_copy)
        return acc_S

    @cute.jit
    def mask_scores(self, st: FragmentState, acc_S: cute.Tensor, q_start: Int32, n_tile: Int32,
                    seqlen_q: Int32, seqlen_k: Int32, window_left: Int32, window_right: Int32,
                    mask: cutlass.Constexpr, group=1):
        col_base = n_tile * self.tile_n + st.ws * self.slice_n
        apply_mask(self.rows_cols_view(acc_S), st.tScS_mn, st.t0ScS_mn, q_start, col_base,
                   seqlen_q, seqlen_k, window_left, window_right, mask, group)

    @cute.jit
    def softmax_step(self, softmax: OnlineSoftmax, acc_S: cute.Tensor, acc_O: cute.Tensor,
                     is_first: cutlass.Constexpr):
        softmax.update(self.rows_cols_view(acc_S), self.rows_cols_view(acc_O), is_first)

    @cute.jit
    def convert_p(self, st: FragmentState, acc_S: cute.Tensor) -> cute.Tensor:
        rP = cute.make_fragment_like(acc_S, self.dtype)
        rP.store(acc_S.load().to(self.dtype))
        return self.p_as_operand_a(rP)

    @cute.jit
    def compute_pv(self, st: FragmentState, tOrP: cute.Tensor, acc_O: cute.Tensor, slot: Int32):
        """O += P·V for this group's KV slice, V read (transposed by ldmatrix) from ring ``slot``."""
        if cutlass.const_expr(st.quant_V is not None):
            self.quant_gemm(acc_O, tOrP, st.tOrVt, st.quant_V, slot, 0, None)
            return
        tOsVt = st.tOsVt[None, None, None, slot]
        self.operand_gemm(acc_O, tOrP, st.tOrVt, (st.copy_V, tOsVt, st.copy_V.retile(st.tOrVt)), a_copy=None)

    @cute.jit
    def operand_gemm(self, acc: cute.Tensor, tA: cute.Tensor, tB: cute.Tensor, b_copy: cutlass.Constexpr,
                     a_copy: cutlass.Constexpr):
        """``acc += A·B`` with B (and A unless it is already in registers) read from shared memory by ldmatrix.

        ``b_copy`` / ``a_copy`` = (tiled copy, (CPY, N or M, K) smem view, register view of the fragment);
        ``a_copy=None`` means A is in registers (P). With ``ldsm_ahead`` None the copies of k-block k+1 are
        issued before the MMAs of k-block k; with ``ldsm_ahead = n`` B streams one ldmatrix at a time, each
        issued n copies before the single ``cute.gemm`` over the atoms it fills, and A stays a k-block ahead.
        """
        tiled_mma = self.tiled_mma()
        copy_B, tBs, tB_view = b_copy
        num_k = cute.size(tB.shape[2])
        groups = copy_groups(tB, tB_view)
        ahead = self.ldsm_ahead
        per_k = ahead is None
        if cutlass.const_expr(per_k):
            ahead = len(groups)  # a whole k-block
        # (k-block, ldmatrix index along N) in the order the MMAs consume them
        order = [(k, j) for k in range(num_k) for j in range(len(groups))]
        if cutlass.const_expr(a_copy is not None):
            cute.copy(a_copy[0], a_copy[1][None, None, 0], a_copy[2][None, None, 0])
        for i in cutlass.range_constexpr(min(ahead, len(order))):
            cute.copy(copy_B, tBs[None, order[i][1], order[i][0]], tB_view[None, order[i][1], order[i][0]])
        # unrolled at trace time (every step indexes static fragment slices), as two loops of at most 16 steps
        for k in cutlass.range_constexpr(num_k):
            for j in cutlass.range_constexpr(len(groups)):
                i = k * len(groups) + j
                if cutlass.const_expr(a_copy is not None and j == 0 and k + 1 < num_k):
                    cute.copy(a_copy[0], a_copy[1][None, None, k + 1], a_copy[2][None, None, k + 1])
                if cutlass.const_expr(i + ahead < len(order)):
                    kn, jn = order[i + ahead]
                    cute.copy(copy_B, tBs[None, jn, kn], tB_view[None, jn, kn])
                if cutlass.const_expr(not per_k):
                    b = atom_group(tB, groups[j], k)
                    d = atom_group(acc, groups[j])
                    cute.gemm(tiled_mma, d, tA[None, None, k], b, d)
                elif cutlass.const_expr(j == len(groups) - 1):
                    cute.gemm(tiled_mma, acc, tA[None, None, k], tB[None, None, k], acc)

    @cute.jit
    def quant_gemm(self, acc: cute.Tensor, tA: cute.Tensor, tB: cute.Tensor, op: QuantOperand, slot,
                   col_mode: cutlass.Constexpr, a_copy: cutlass.Constexpr):
        """``acc += A·B`` with B dequantized k-block by k-block from a quantized ring slot (A from registers, or
        read by ldmatrix a k-block at a time with ``a_copy``)."""
        tiled_mma = self.tiled_mma()
        for k in cutlass.range_constexpr(cute.size(tB.shape[2])):
            if cutlass.const_expr(a_copy is not None):
                cute.copy(a_copy[0], a_copy[1][None, None, k], a_copy[2][None, None, k])
            self.dequant.load(op, slot, k, tB[None, None, k], col_mode)
            cute.gemm(tiled_mma, acc, tA[None, None, k], tB[None, None, k], acc)

    # ---- end of the mainloop (merge: WarpGroupImpl) ----
    @cute.jit
    def store_o(self, st: FragmentState, acc_O: cute.Tensor, sO: cute.Tensor):
        """Convert the normalized accumulators to the output type and write them to ``sO``."""
        rO = cute.make_fragment_like(acc_O, self.dtype)
        rO.store(acc_O.load().to(self.dtype))
        atom = cute.make_copy_atom(cute.nvgpu.CopyUniversalOp(), self.dtype, num_bits_per_copy=32)
        copy_O = cute.make_tiled_copy_C(atom, self.tiled_mma()).get_slice(st.tq)
        cute.copy(copy_O, copy_O.retile(rO), copy_O.partition_D(sO))


def _flat(t):
    return [x for e in t for x in _flat(e)] if isinstance(t, tuple) else [t]


def mode_offset(layout, mode: int, i: int) -> int:
    """Offset of index ``i`` of ``layout``'s ``mode`` (static layouts, colexicographic), as a Python int."""
    shapes, strides = _flat(layout.shape[mode]), _flat(layout.stride[mode])
    off = 0
    for extent, stride in zip(shapes, strides):
        off += (i % extent) * stride
        i //= extent
    return off


def copy_groups(frag: cute.Tensor, view: cute.Tensor) -> list[list[int]]:
    """For each copy along N of ``view`` (an ldmatrix retiling of the MMA fragment ``frag``), the MMA atoms along
    N whose registers it writes. Both tensors index (values, N, K); computed from the static layouts."""
    width = cute.size(view.shape[0])
    values = {mode_offset(view.layout, 0, v) for v in range(width)}
    groups = []
    for j in range(cute.size(view.shape[1])):
        base = mode_offset(view.layout, 1, j)
        owned = [n for n in range(cute.size(frag.shape[1])) if mode_offset(frag.layout, 1, n) - base in values]
        groups.append(owned)
    if sorted(n for g in groups for n in g) != list(range(cute.size(frag.shape[1]))):
        raise ValueError(f"ldmatrix copies {view.layout} do not tile the MMA fragment {frag.layout}")
    return groups


def atom_group(t: cute.Tensor, atoms: list[int], k: int | None = None) -> cute.Tensor:
    """The MMA atoms ``atoms`` (evenly spaced) along N of a fragment: ``(V, N, K)`` operand at k-block ``k``
    -> ``(V, len(atoms))``, or ``(V, M, N)`` accumulator -> ``(V, M, len(atoms))``."""
    mode = 1 if k is not None else 2
    offs = [mode_offset(t.layout, mode, n) for n in atoms]
    step = offs[1] - offs[0] if len(offs) > 1 else 1
    if any(b - a != step for a, b in zip(offs, offs[1:])):
        raise ValueError(f"atoms {atoms} of {t.layout} are not evenly spaced")
    first = t[None, atoms[0], k] if k is not None else t[None, None, atoms[0]]
    shape = (*first.layout.shape, len(atoms)) if k is None else (first.layout.shape, len(atoms))
    stride = (*first.layout.stride, step) if k is None else (first.layout.stride, step)
    return cute.make_tensor(first.iterator, cute.make_layout(shape, stride=stride))
