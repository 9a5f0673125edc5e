"""Warpgroup-MMA Impl (Hopper): S = Q·Kᵀ with both operands in shared memory (SS wgmma), O += P·V with P from
registers (RS wgmma), fp32 accumulators, fp16 / bf16.

The math of one MMA family, as the other Impls: shared-memory layouts it reads (the wgmma swizzle atoms, K-major
Q and K, V read MN-major through a transposed view), the per-tile products, the (rows, cols) view of the
accumulators the online softmax and the masks work on, P converted in registers into the A operand of P·V, and
the store of O. ``consumer_wgs`` warp groups of 128 threads each own 64 query rows (``tile_m = 64 · consumer_wgs``).

Products are *issued* (``issue_qk``, ``issue_pv``: fence, wgmma chain, commit) and waited for separately
(``wait``), so a mainloop strategy decides what overlaps: the warp-specialized one runs the softmax of tile n+1
while P·V of tile n is in flight.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
import cutlass.utils.hopper_helpers as sm90_helpers
from cutlass import Float32, Int32
from cutlass.cute.nvgpu import warpgroup
from cutlass.tensor_utils import LayoutEnum

from cute_attention.core.masks import apply_mask, pair_columns_below
from cute_attention.core.softmax import OnlineSoftmax

WARPGROUP = 128  # threads of one warp group
WGMMA_M = 64  # rows of one warpgroup MMA


@dataclass(frozen=True)
class Wgmma:
    """Tile recipe of the warpgroup-MMA Impl (hashable: part of the compile key)."""

    tile_m: int = 128
    tile_n: int = 128
    family: str = "wgmma"
    # hidden scores by 32-bit masks per row (R2P) rather than a compare per score
    mask_bits: bool = True

    def __post_init__(self):
        if self.tile_m % WGMMA_M or not 1 <= self.tile_m // WGMMA_M <= 3:
            raise ValueError(f"tile_m must be 64, 128 or 192 (64 rows per consumer warp group), got {self.tile_m}")
        if self.tile_n % 16 or not 16 <= self.tile_n <= 256:
            raise ValueError(f"tile_n must be a multiple of 16 in [16, 256], got {self.tile_n}")

    @property
    def consumer_wgs(self) -> int:
        return self.tile_m // WGMMA_M

    # the attention kernel's contract: a wgmma tile splits no KV tile across warps
    warps_s = 1
    kv_quant_kinds = ()  # no dequant step: quantized caches run the fragment Impls

    @property
    def warps_q(self) -> int:
        return self.consumer_wgs * 4

    @property
    def threads(self) -> int:
        """Threads that run the Impl (the consumer warp groups)."""
        return self.consumer_wgs * WARPGROUP

    def build(self, dtype, head_dim: int) -> WgmmaImpl:
        return WgmmaImpl(dtype, head_dim, self)

    def describe(self) -> str:
        return (f"wgmma {self.tile_m}x{self.tile_n}, {self.consumer_wgs} consumer warp groups, P in registers"
                + ("" if self.mask_bits else ", a compare per masked score"))


@dataclass
class WgmmaState:
    """Per-thread partitions of one CTA (``tidx``: index among the consumer threads)."""

    tq: Any
    ws: Any
    tSrQ: Any  # Q descriptors (MMA, MMA_M, MMA_K)
    tSrK: Any  # K descriptors (MMA, MMA_N, MMA_K, stages)
    tOrVt: Any  # V descriptors (MMA, MMA_D, MMA_K, stages)
    thr_mma_pv: Any
    tScS_mn: Any
    t0ScS_mn: Any
    tOcO_mn: Any


class WgmmaImpl:
    """The warpgroup-MMA Impl for one dtype and head dim."""

    mma_sass = "HGMMA.64"  # every warpgroup MMA is m64; N and K vary with the tile
    sass_required = ("HGMMA",)
    sass_forbidden = ("LDSM",)
    q_in_regs = False

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, tiles: Wgmma):
        self.dtype = dtype
        self.head_dim = head_dim
        self.tile_m = tiles.tile_m
        self.tile_n = tiles.tile_n
        self.consumer_wgs = tiles.consumer_wgs
        self.warps_s = 1
        self.threads = tiles.threads
        self.group_threads = tiles.threads
        self.recipe = tiles

    # ---- host-side facts ----
    def merge_bytes(self) -> int:
        return 0

    def scratch_bytes(self) -> int:
        return 0

    def tiled_mma_qk(self) -> cute.TiledMma:
        """(tile_m, tile_n) = Q (K-major, smem) · K (K-major, smem)ᵀ, one 64-row atom per consumer warp group."""
        return sm90_helpers.make_trivial_tiled_mma(
            self.dtype, self.dtype, cute.nvgpu.OperandMajorMode.K, cute.nvgpu.OperandMajorMode.K, Float32,
            atom_layout_mnk=(self.consumer_wgs, 1, 1), tiler_mn=(WGMMA_M, self.tile_n))

    def tiled_mma_pv(self) -> cute.TiledMma:
        """(tile_m, head_dim) += P (registers) · V (MN-major, smem)."""
        return sm90_helpers.make_trivial_tiled_mma(
            self.dtype, self.dtype, cute.nvgpu.OperandMajorMode.K, cute.nvgpu.OperandMajorMode.MN, Float32,
            atom_layout_mnk=(self.consumer_wgs, 1, 1), tiler_mn=(WGMMA_M, self.head_dim),
            a_source=warpgroup.OperandSource.RMEM)

    def smem_layout(self, rows: int, stages: int | None = None):
        """Row-major ``(rows, head_dim[, stages])`` tile built from the widest wgmma swizzle atom the row allows."""
        atom = warpgroup.make_smem_layout_atom(
            sm90_helpers.get_smem_layout_atom(LayoutEnum.ROW_MAJOR, self.dtype, self.head_dim), self.dtype)
        shape = (rows, self.head_dim) if stages is None else (rows, self.head_dim, stages)
        return cute.tile_to_shape(atom, shape, order=(0, 1) if stages is None else (0, 1, 2))

    def q_layout(self):
        return self.smem_layout(self.tile_m)

    def kv_layout(self, stages: int):
        return self.smem_layout(self.tile_n, stages)

    # ---- per-CTA state ----
    @cute.jit
    def make_state(self, tidx: Int32, sQ: cute.Tensor, sK: cute.Tensor, sV: cute.Tensor) -> WgmmaState:
        """Partitions for consumer thread ``tidx``: the warp group's operand descriptors, the thread's coordinates."""
        mma_qk, mma_pv = self.tiled_mma_qk(), self.tiled_mma_pv()
        wg = cute.arch.make_warp_uniform(tidx // WARPGROUP)
        wg_qk = mma_qk.get_slice(wg * WARPGROUP)
        wg_pv = mma_pv.get_slice(wg * WARPGROUP)
        # (d, tile_n, stages): V read MN-major as the B operand of P·V
        sVt = cute.composition(sV, cute.make_ordered_layout((self.head_dim, self.tile_n, sV.shape[2]),
                                                            order=(1, 0, 2)))
        tSrQ = wg_qk.make_fragment_A(wg_qk.partition_A(sQ))
        tSrK = wg_qk.make_fragment_B(wg_qk.partition_B(sK))
        tOrVt = wg_pv.make_fragment_B(wg_pv.partition_B(sVt))
        thr_qk, thr_pv = mma_qk.get_slice(tidx), mma_pv.get_slice(tidx)
        cS = cute.make_identity_tensor((self.tile_m, self.tile_n))
        cO = cute.make_identity_tensor((self.tile_m, self.head_dim))
        return WgmmaState(
            tq=tidx, ws=Int32(0), tSrQ=tSrQ, tSrK=tSrK, tOrVt=tOrVt, thr_mma_pv=thr_pv,
            tScS_mn=self.rows_cols_view(thr_qk.partition_C(cS)),
            t0ScS_mn=self.rows_cols_view(mma_qk.get_slice(0).partition_C(cS)),
            tOcO_mn=self.rows_cols_view(thr_pv.partition_C(cO)))

    @cute.jit
    def make_acc_O(self, st: WgmmaState) -> cute.Tensor:
        acc_O = cute.make_rmem_tensor(st.thr_mma_pv.partition_shape_C((self.tile_m, self.head_dim)), Float32)
        acc_O.fill(0.0)
        return acc_O

    def make_softmax(self, scale_log2: Float32, acc_O: cute.Tensor) -> OnlineSoftmax:
        """Four lanes share a row of a wgmma accumulator, as in the m16n8 families."""
        return OnlineSoftmax(scale_log2, cute.size(self.rows_cols_view(acc_O).shape[0]))

    def make_p(self, st: WgmmaState) -> cute.Tensor:
        """P in registers, laid out as the A operand of P·V."""
        mma_pv = self.tiled_mma_pv()
        thr = mma_pv.get_slice(st.tq)
        return thr.make_fragment_A(thr.partition_shape_A((self.tile_m, self.tile_n)))

    # ---- accumulator views ----
    @staticmethod
    def rows_cols_view(acc: cute.Tensor) -> cute.Tensor:
        """View a wgmma accumulator ``((2, 2, N/8), MMA_M, MMA_N)`` as ``((2, MMA_M), (2, N/8, MMA_N))``."""
        shape = acc.layout.shape
        compact = cute.make_layout(shape)
        view = cute.make_layout(
            ((shape[0][1], shape[1]), (shape[0][0], shape[0][2], shape[2])),
            stride=((compact.stride[0][1], compact.stride[1]),
                    (compact.stride[0][0], compact.stride[0][2], compact.stride[2])))
        return cute.make_tensor(acc.iterator, cute.composition(acc.layout, view))

    @staticmethod
    def as_operand_a(acc: cute.Tensor) -> cute.Tensor:
        """View S's accumulator ``((2, 2, N/8), M, N)`` in the order of P·V's A fragment ``((2, 2, 2), M, N/16)``:
        two adjacent 8-column atoms of S are one 16-deep k-block of P·V."""
        div = cute.logical_divide(acc.layout, ((None, None, 2), None, None))
        frag = cute.make_layout(
            ((div.shape[0][0], div.shape[0][1], div.shape[0][2][0]), div.shape[1], (div.shape[0][2][1], div.shape[2])),
            stride=((div.stride[0][0], div.stride[0][1], div.stride[0][2][0]), div.stride[1],
                    (div.stride[0][2][1], div.stride[2])))
        return cute.make_tensor(acc.iterator, frag)

    def partition_O(self, st: WgmmaState, t: cute.Tensor) -> cute.Tensor:
        """This thread's elements of a ``(tile_m, head_dim)`` tensor, in ``acc_O``'s order."""
        return st.thr_mma_pv.partition_C(t)

    # ---- per-tile math ----
    @cute.jit
    def issue_qk(self, st: WgmmaState, stage: Int32) -> cute.Tensor:
        """Start S = Q·K(stage)ᵀ; the caller waits (:meth:`wait`) before reading the returned accumulator."""
        mma_qk = self.tiled_mma_qk()
        acc_S = cute.make_rmem_tensor(
            mma_qk.get_slice(st.tq).partition_shape_C((self.tile_m, self.tile_n)), Float32)
        self.gemm(mma_qk, acc_S, st.tSrQ, st.tSrK[None, None, None, stage], True)
        return acc_S

    @cute.jit
    def issue_pv(self, st: WgmmaState, tOrP: cute.Tensor, acc_O: cute.Tensor, stage: Int32):
        """Start O += P·V(stage)."""
        self.gemm(self.tiled_mma_pv(), acc_O, tOrP, st.tOrVt[None, None, None, stage], False)

    @cute.jit
    def gemm(self, tiled_mma: cute.TiledMma, acc: cute.Tensor, tA: cute.Tensor, tB: cute.Tensor,
             zero_init: cutlass.Constexpr):
        """One wgmma chain over the k-blocks, committed as one group."""
        warpgroup.fence()
        atom = cute.make_mma_atom(tiled_mma.op)
        atom.set(warpgroup.Field.ACCUMULATE, not zero_init)
        for k in cutlass.range_constexpr(cute.size(tA.shape[2])):
            cute.gemm(atom, acc, tA[None, None, k], tB[None, None, k], acc)
            atom.set(warpgroup.Field.ACCUMULATE, True)
        warpgroup.commit_group()

    @staticmethod
    def wait(pending: cutlass.Constexpr):
        """Wait until at most ``pending`` committed wgmma groups of this warp group are in flight."""
        warpgroup.wait_group(pending)

    @cute.jit
    def mask_scores(self, st: WgmmaState, acc_S: cute.Tensor, q_start: Int32, n_tile: Int32, seqlen_q: Int32,
                    seqlen_k: Int32, window_left: Int32, window_right: Int32, mask: cutlass.Constexpr, group=1):
        # a thread's columns of a row: pairs every 8 (the accumulator layout)
        count_below = functools.partial(pair_columns_below, pairs=self.tile_n // 8) if self.recipe.mask_bits else None
        apply_mask(self.rows_cols_view(acc_S), st.tScS_mn, st.t0ScS_mn, q_start, n_tile * self.tile_n, seqlen_q,
                   seqlen_k, window_left, window_right, mask, group, by_select=True, count_below=count_below)

    @cute.jit
    def convert_p(self, acc_S: cute.Tensor, tOrP: cute.Tensor):
        """P (fp32 in S's accumulator) → ``tOrP`` in the input type, one 16-deep k-block (8 values) at a time: a
        vector whose length is not a power of two (40 values at tile_n 80, 56 at 112) is converted value by value
        and packed by byte permutes, which ptxas then interleaves with P·V's wgmma chain and serializes it."""
        tSrP = self.as_operand_a(acc_S)
        for k in cutlass.range_constexpr(cute.size(tOrP.shape[2])):
            tOrP[None, None, k].store(tSrP[None, None, k].load().to(self.dtype))

    @cute.jit
    def store_o(self, st: WgmmaState, acc_O: cute.Tensor, sO: cute.Tensor):
        """Convert the normalized accumulators to the output type and write them to ``sO`` (32-bit stores)."""
        self.store_o_with(cute.make_copy_atom(cute.nvgpu.CopyUniversalOp(), self.dtype, num_bits_per_copy=32),
                          st, acc_O, sO)

    @cute.jit
    def store_o_stmatrix(self, st: WgmmaState, acc_O: cute.Tensor, sO: cute.Tensor):
        """:meth:`store_o` by ``stmatrix`` (four 8x8 matrices per instruction: 8 instructions per thread at d128
        instead of 32 32-bit stores), for the TMA store of O."""
        self.store_o_with(cute.make_copy_atom(cute.nvgpu.warp.StMatrix8x8x16bOp(transpose=False, num_matrices=4),
                                              self.dtype), st, acc_O, sO)

    @cute.jit
    def store_o_with(self, atom, st: WgmmaState, acc_O: cute.Tensor, sO: cute.Tensor):
        """O in the output type through ``atom``, partitioned like P·V's accumulator."""
        rO = cute.make_fragment_like(acc_O, self.dtype)
        rO.store(acc_O.load().to(self.dtype))
        copy_O = cute.make_tiled_copy_C(atom, self.tiled_mma_pv()).get_slice(st.tq)
        cute.copy(copy_O, copy_O.retile(rO), copy_O.partition_D(sO))

    def merge(self, st, softmax, acc_O, smem_merge) -> None:
        """Nothing to merge: a warp group owns whole rows of every KV tile."""
