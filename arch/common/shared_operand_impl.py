"""Shared-operand Impl: MMA families that read every operand, P included, from shared memory by vector loads.

The base of Volta's m8n8k4 and the SIMT (CUDA-core FMA) Impls; compare
:mod:`~cute_attention.arch.common.fragment_impl`, whose operands arrive by ``ldmatrix`` and whose P stays in
registers.

These families have no ``ldmatrix`` and their accumulator layout is not their A-operand layout, so
(as in TurboMind's Sm70 and SIMT Impls) operands come from shared memory with plain vector loads and P
goes back through shared memory between Q·Kᵀ and P·V. A family describes one warp-wide MMA step
(``WarpAtom``) as linear maps from lane bits and register indices to tile coordinates; this base tiles
those maps over the CTA (``warps_q`` warps split the query rows, each owns whole rows of S, P and O),
partitions the shared tiles with them, and runs the k-loop. The family supplies ``mma`` for one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Float32, Int32

from cute_attention.arch.common.smem_layouts import pointer_swizzled_tile, smem_tile
from cute_attention.arch.common.warp_merge import WARP, WarpGroupImpl
from cute_attention.core.masks import apply_mask
from cute_attention.core.softmax import OnlineSoftmax

K_STEP = 4  # every family here consumes four k-consecutive 16-bit values per lane and row (one LDS.64)

# (extent, axis, step): a lane bit or register index moves the coordinate on ``axis`` (0 = tile rows,
# 1 = tile columns, 2 = ring slot) by ``step`` per unit; step 0 = every lane of that bit holds the same data
Mode = tuple[int, int, int]


@dataclass(frozen=True)
class OperandMap:
    """One operand's share of a warp-wide MMA step: ``lanes`` (lane bits, lowest first) and ``values``."""

    lanes: tuple[Mode, ...]
    values: tuple[Mode, ...]

    def __post_init__(self):
        width = 1
        for extent, _, _ in self.lanes:
            width *= extent
        if width != WARP:
            raise ValueError(f"lane modes cover {width} lanes, not {WARP}")

    @property
    def size(self) -> int:
        n = 1
        for extent, _, _ in self.values:
            n *= extent
        return n

    def coords(self, lane: int, value: int) -> tuple[int, int]:
        """(row, col) inside the warp step of register ``value`` of ``lane`` (plain Python, for tests)."""
        pos = [0, 0, 0]
        for modes, i in ((self.lanes, lane), (self.values, value)):
            for extent, axis, step in modes:
                pos[axis] += (i % extent) * step
                i //= extent
        return pos[0], pos[1]


@dataclass(frozen=True)
class WarpAtom:
    """Fragment maps of one warp-wide step: S (m × n_s) += Q (m × 4) · K (n_s × 4)ᵀ and O (m × n_o) += P · V.

    ``a``: rows m, cols k (Q and P tiles); ``b_col``: rows n, cols k (K tile); ``b_row``: rows k, cols n
    (V tile, stored kv × d); ``c_s`` / ``c_o``: rows m, cols n of S and O. A lane must own the same rows
    in ``c_s`` and ``c_o``; ``row_lanes`` are the butterfly offsets that reach the other lanes of a row.
    """

    m: int
    n_s: int
    n_o: int
    a: OperandMap
    b_col: OperandMap
    b_row: OperandMap
    c_s: OperandMap
    c_o: OperandMap
    row_lanes: tuple[int, ...]


def tv_modes(op: OperandMap, rows: int, cols: int, warps: tuple[Mode, ...], blocks: tuple[Mode, ...]) -> tuple:
    """(shape, stride) of ``(thread, (atom values, *blocks))`` -> column-major index of a ``(rows, cols[, slots])``
    tile, as plain Python tuples; ``warps``: the modes of the warp index above the lane bits (query-row warps,
    then KV-slice groups)."""

    def stride(axis: int, step: int) -> int:
        return step * (1, rows, rows * cols)[axis]

    thr = (*op.lanes, *warps)
    vals = op.values
    atom_shape = tuple(e for e, _, _ in vals) if len(vals) > 1 else vals[0][0]
    atom_stride = tuple(stride(a, s) for _, a, s in vals) if len(vals) > 1 else stride(vals[0][1], vals[0][2])
    return ((tuple(e for e, _, _ in thr), (atom_shape, *(e for e, _, _ in blocks))),
            (tuple(stride(a, s) for _, a, s in thr), (atom_stride, *(stride(a, s) for _, a, s in blocks))))


def rows_cols_layout(val_modes: list[tuple[int, int]]) -> cute.Layout:
    """View of a compact fragment whose flattened modes are ``(extent, axis)`` as ``(rows, cols)``."""
    strides, acc = [], 1
    for extent, _ in val_modes:
        strides.append(acc)
        acc *= extent
    rows = [(e, s) for (e, a), s in zip(val_modes, strides) if a == 0]
    cols = [(e, s) for (e, a), s in zip(val_modes, strides) if a == 1]
    return cute.make_layout((tuple(e for e, _ in rows), tuple(e for e, _ in cols)),
                            stride=(tuple(s for _, s in rows), tuple(s for _, s in cols)))


def store_vector(op: OperandMap) -> int:
    """Elements a lane can store at once: the first value mode, if it runs along the columns with step 1."""
    extent, axis, step = op.values[0]
    return extent if axis == 1 and step == 1 else 1


@cute.jit
def vector_copy(src: cute.Tensor, dst: cute.Tensor, vec: cutlass.Constexpr):
    """Copy ``src`` to ``dst`` (same shape) ``vec`` elements per instruction; the first ``vec`` of the
    colexicographic order must be contiguous in both (e.g. register fragment -> swizzled shared memory)."""
    n = cute.size(src)
    split = cute.make_layout((vec, n // vec))
    bits = vec * src.element_type.width
    atom = cute.make_copy_atom(cute.nvgpu.CopyUniversalOp(), src.element_type, num_bits_per_copy=bits)
    cute.copy(atom, cute.make_tensor(src.iterator, cute.composition(src.layout, split)),
              cute.make_tensor(dst.iterator, cute.composition(dst.layout, split)))


@dataclass(frozen=True)
class SharedOperandTiles:
    """Tuning choices of a shared-memory-operand Impl (hashable: part of the compile key)."""

    tile_m: int = 64
    tile_n: int = 64
    warps_q: int = 4
    warps_s: int = 1  # groups of warps_q warps, each taking a tile_n / warps_s slice of every KV tile (merged)
    rescale_threshold: float | None = None
    k_unroll: int = 4  # unroll of the k-loop (operand loads of later steps overlap the current MMAs)

    kv_quant_kinds = ()  # no dequant step yet: quantized caches run the fragment Impls

    @property
    def threads(self) -> int:
        return self.warps_q * self.warps_s * WARP

    def describe(self) -> str:
        """Tiles and knobs in words (the catalogue's description)."""
        return (f"{self.family} tile {self.tile_m}x{self.tile_n} warps {self.warps_q}x{self.warps_s}, "
                f"k unroll {self.k_unroll}"
                + (f", lazy rescale 2^{self.rescale_threshold:g}" if self.rescale_threshold is not None else ""))


@dataclass(frozen=True)
class SharedOperandState:
    """Per-thread partitions built once per CTA (shapes: (atom values, blocks along M or N, k blocks[, slot]))."""

    tq: Any
    ws: Any
    tSsQ: Any  # (A, MB, KB) Q operands in shared memory
    tSsK: Any  # (B, NB, KB, slot) K operands, every ring slot
    tOsP: Any  # (A, MB, KB) P operands in shared memory
    tOsV: Any  # (B, DB, KB, slot) V operands, every ring slot
    tSsP: Any  # (C, MB, NB) where this thread writes its P
    tScS_mn: Any  # (rows, cols) tile coordinates of this thread's scores
    t0ScS_mn: Any  # the same for thread 0 (compile-time columns)
    tOcO_mn: Any  # (rows, cols) tile coordinates of this thread's outputs
    tOsO: Any  # (C, MB, DB) this thread's outputs in the Q tile (their shape sizes acc_O)


class SharedOperandImpl(WarpGroupImpl):
    """Attention math on a family of warp steps whose operands are read from shared memory (LDS)."""

    name = "lds_mma"
    atom: WarpAtom
    mma_sass: str | None = None  # no HMMA form to promise; families list what they do promise below
    sass_required: tuple[str, ...] = ("LDS.64",)
    sass_forbidden: tuple[str, ...] = ("LDSM",)
    dtypes: tuple[str, ...] = ("float16", "bfloat16")

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, tiles: SharedOperandTiles):
        super().__init__(dtype, head_dim, tiles)
        self.k_unroll = tiles.k_unroll
        self.q_in_regs = False
        self.warp_m = self.tile_m // self.warps_q
        self.check_tiles()

    # ---- static checks and sizes (host side, plain Python) ----
    def check_tiles(self) -> None:
        at = self.atom
        if self.warps_s < 1 or self.tile_n % self.warps_s:
            raise ValueError(f"warps_s={self.warps_s} must be >= 1 and divide tile_n={self.tile_n}")
        if self.tile_m % (self.warps_q * at.m):
            raise ValueError(f"tile_m={self.tile_m} must be a multiple of warps_q*{at.m}={self.warps_q * at.m}")
        if self.slice_n % at.n_s or self.slice_n % K_STEP:
            raise ValueError(f"tile_n/warps_s={self.slice_n} must be a multiple of {max(at.n_s, K_STEP)} "
                             f"for {self.name}")
        if self.head_dim % at.n_o or self.head_dim % K_STEP:
            raise ValueError(f"head_dim={self.head_dim} must be a multiple of {at.n_o} for {self.name}")
        if self.k_unroll < 1:
            raise ValueError(f"k_unroll must be >= 1, got {self.k_unroll}")

    def scratch_bytes(self) -> int:
        """Shared memory for P (``tile_m × tile_n``, input dtype) between the two products."""
        return self.tile_m * self.tile_n * self.dtype.width // 8

    # ---- compile-time objects ----
    def q_tile(self, ptr: cute.Pointer) -> cute.Tensor:
        return smem_tile(ptr, self.dtype, self.tile_m, self.head_dim)

    def kv_slot_bytes(self) -> int:
        """Shared memory of one K/V ring slot."""
        return self.tile_n * self.head_dim * self.dtype.width // 8

    def kv_ring(self, ptr: cute.Pointer, slots: int) -> cute.Tensor:
        return smem_tile(ptr, self.dtype, self.tile_n, self.head_dim, slots)

    def layouts(self, slots: int) -> dict[str, cute.Layout]:
        """The CTA-wide (thread, values) maps of every operand and accumulator (see :meth:`layout_modes`)."""
        return {k: cute.make_layout(shape, stride=stride) for k, (shape, stride) in self.layout_modes(slots).items()}

    def layout_modes(self, slots: int) -> dict[str, tuple]:
        """(shape, stride) of every operand's and accumulator's CTA-wide (thread, values) map. ``S_local`` gives
        the coordinates of a thread's scores inside its group's KV slice (the masks add the slice's offset)."""
        at, d, n, sn, wm = self.atom, self.head_dim, self.tile_n, self.slice_n, self.warp_m
        ws = self.warps_s
        # warps_q warps split the query rows; the warps_s groups take KV slices (rows of K/V, columns of S/P)
        rows_q = ((self.warps_q, 0, wm),) + (((ws, 0, 0),) if ws > 1 else ())  # O: every group holds all of O
        kv_rows = ((self.warps_q, 0, 0),) + (((ws, 0, sn),) if ws > 1 else ())  # each warp reads its group's slice
        s_cols = ((self.warps_q, 0, wm),) + (((ws, 1, sn),) if ws > 1 else ())
        mb = (wm // at.m, 0, at.m)
        return {
            "Q": tv_modes(at.a, self.tile_m, d, rows_q, (mb, (d // K_STEP, 1, K_STEP))),
            "K": tv_modes(at.b_col, n, d, kv_rows, ((sn // at.n_s, 0, at.n_s), (d // K_STEP, 1, K_STEP),
                                                     (slots, 2, 1))),
            "S": tv_modes(at.c_s, self.tile_m, n, s_cols, (mb, (sn // at.n_s, 1, at.n_s))),
            "S_local": tv_modes(at.c_s, self.tile_m, sn, rows_q, (mb, (sn // at.n_s, 1, at.n_s))),
            "P": tv_modes(at.a, self.tile_m, n, s_cols, (mb, (sn // K_STEP, 1, K_STEP))),
            "V": tv_modes(at.b_row, n, d, kv_rows, ((d // at.n_o, 1, at.n_o), (sn // K_STEP, 0, K_STEP),
                                                     (slots, 2, 1))),
            "O": tv_modes(at.c_o, self.tile_m, d, rows_q, (mb, (d // at.n_o, 1, at.n_o))),
        }

    def rows_cols(self, t: cute.Tensor, c: OperandMap) -> cute.Tensor:
        """View an accumulator-shaped fragment (or its coordinates) as ``(rows, cols)``."""
        modes = [(e, a) for e, a, _ in c.values] + [(cute.size(t.shape[1]), 0), (cute.size(t.shape[2]), 1)]
        return cute.make_tensor(t.iterator, cute.composition(t.layout, rows_cols_layout(modes)))

    def rows_cols_view(self, acc_O: cute.Tensor) -> cute.Tensor:
        return self.rows_cols(acc_O, self.atom.c_o)

    # ---- per-CTA setup ----
    @cute.jit
    def make_state(self, tidx: Int32, sQ: cute.Tensor, sKV: cute.Tensor, scratch: cute.Pointer) -> SharedOperandState:
        tv = self.layouts(cute.size(sKV.shape[2]))
        # the tiles the gmem iterators fill, with their swizzle moved into the pointer (plain layouts)
        sQ = pointer_swizzled_tile(sQ.iterator, self.dtype, self.tile_m, self.head_dim)
        sKV = pointer_swizzled_tile(sKV.iterator, self.dtype, self.tile_n, self.head_dim, cute.size(sKV.shape[2]))
        sP = pointer_swizzled_tile(scratch, self.dtype, self.tile_m, self.tile_n)
        cS = cute.make_identity_tensor((self.tile_m, self.slice_n))
        cO = cute.make_identity_tensor((self.tile_m, self.head_dim))
        sl3 = (None, None, None)
        sl4 = (None, None, None, None)
        return SharedOperandState(
            tq=tidx % self.group_threads if self.warps_s > 1 else tidx,
            ws=tidx // self.group_threads if self.warps_s > 1 else Int32(0),
            tSsQ=cute.composition(sQ, tv["Q"])[(tidx, sl3)],
            tSsK=cute.composition(sKV, tv["K"])[(tidx, sl4)],
            tOsP=cute.composition(sP, tv["P"])[(tidx, sl3)],
            tOsV=cute.composition(sKV, tv["V"])[(tidx, sl4)],
            tSsP=cute.composition(sP, tv["S"])[(tidx, sl3)],
            tScS_mn=self.rows_cols(cute.composition(cS, tv["S_local"])[(tidx, sl3)], self.atom.c_s),
            t0ScS_mn=self.rows_cols(cute.composition(cS, tv["S_local"])[(0, sl3)], self.atom.c_s),
            tOcO_mn=self.rows_cols(cute.composition(cO, tv["O"])[(tidx, sl3)], self.atom.c_o),
            tOsO=cute.composition(sQ, tv["O"])[(tidx, sl3)],
        )

    @cute.jit
    def load_q_regs(self, st: SharedOperandState):
        """Q is read from shared memory at every tile by these families."""

    def partition_O(self, st: SharedOperandState, t: cute.Tensor) -> cute.Tensor:
        """This thread's elements of a ``(tile_m, head_dim)`` tensor, in ``acc_O``'s order."""
        return cute.composition(t, self.layouts(1)["O"])[(st.tq, (None, None, None))]

    @cute.jit
    def make_acc_O(self, st: SharedOperandState) -> cute.Tensor:
        acc_O = cute.make_rmem_tensor(st.tOsO.shape, Float32)
        acc_O.fill(0.0)
        return acc_O

    def make_softmax(self, scale_log2: Float32, acc_O: cute.Tensor) -> OnlineSoftmax:
        return OnlineSoftmax(scale_log2, cute.size(self.rows_cols_view(acc_O).shape[0]),
                             row_lanes=self.atom.row_lanes, rescale_threshold=self.rescale_threshold)

    # ---- per-tile math ----
    @cute.jit
    def compute_qk(self, st: SharedOperandState, slot: Int32) -> cute.Tensor:
        """S = Q·Kᵀ with K from ring ``slot``."""
        acc_S = cute.make_rmem_tensor(st.tSsP.shape, Float32)
        acc_S.fill(0.0)
        self.gemm(acc_S, st.tSsQ, st.tSsK[None, None, None, slot], False)
        return acc_S

    @cute.jit
    def mask_scores(self, st: SharedOperandState, acc_S: cute.Tensor, q_start: Int32, n_tile: Int32,
                    seqlen_q: Int32, seqlen_k: Int32, window_left: Int32, window_right: Int32,
                    mask: cutlass.Constexpr, group=1):
        col_base = n_tile * self.tile_n
        if cutlass.const_expr(self.warps_s > 1):
            col_base = col_base + st.ws * self.slice_n
        apply_mask(self.rows_cols(acc_S, self.atom.c_s), st.tScS_mn, st.t0ScS_mn, q_start, col_base,
                   seqlen_q, seqlen_k, window_left, window_right, mask, group)

    @cute.jit
    def softmax_step(self, softmax: OnlineSoftmax, acc_S: cute.Tensor, acc_O: cute.Tensor,
                     is_first: cutlass.Constexpr):
        softmax.update(self.rows_cols(acc_S, self.atom.c_s), self.rows_cols_view(acc_O), is_first)

    @cute.jit
    def convert_p(self, st: SharedOperandState, acc_S: cute.Tensor) -> cute.Tensor:
        """Write P (input dtype) to shared memory; the warp reads it back as A operands of P·V."""
        rP = cute.make_rmem_tensor(acc_S.shape, self.dtype)
        rP.store(acc_S.load().to(self.dtype))
        vector_copy(rP, st.tSsP, store_vector(self.atom.c_s))
        cute.arch.sync_warp()
        return st.tOsP

    @cute.jit
    def compute_pv(self, st: SharedOperandState, tOsP: cute.Tensor, acc_O: cute.Tensor, slot: Int32):
        """O += P·V with P from shared memory and V from ring ``slot``."""
        self.gemm(acc_O, tOsP, st.tOsV[None, None, None, slot], True)
        cute.arch.sync_warp()  # every lane is done reading P before the next tile overwrites it

    @cute.jit
    def gemm(self, acc: cute.Tensor, tAs: cute.Tensor, tBs: cute.Tensor, pv: cutlass.Constexpr):
        """``acc (C, MB, NB) += A (A, MB, KB) · B (B, NB, KB)``, one k block of 4 per step."""
        rA = cute.make_rmem_tensor(tAs[None, None, 0].shape, self.dtype)
        rB = cute.make_rmem_tensor(tBs[None, 0, 0].shape, self.dtype)
        for kb in cutlass.range(cute.size(tAs.shape[2]), unroll=self.k_unroll):
            cute.autovec_copy(tAs[None, None, kb], rA)
            a = self.prepare(rA)
            # one B atom at a time: only its registers (up to 16 per lane for SIMT's V) are live
            for n in cutlass.range_constexpr(cute.size(acc.shape[2])):
                cute.autovec_copy(tBs[None, n, kb], rB)
                b = self.prepare(rB)
                for m in cutlass.range_constexpr(cute.size(acc.shape[1])):
                    self.mma(acc[None, m, n], a[None, m], b, pv)

    def prepare(self, frag: cute.Tensor) -> cute.Tensor:
        """Operand registers as the family's instruction takes them (identity by default)."""
        return frag

    def mma(self, acc: cute.Tensor, a: cute.Tensor, b: cute.Tensor, pv: bool):
        raise NotImplementedError

    # ---- end of the mainloop (merge: WarpGroupImpl) ----
    @cute.jit
    def store_o(self, st: SharedOperandState, acc_O: cute.Tensor, sO: cute.Tensor):
        """Convert the normalized accumulators to the output type and write them into the Q tile."""
        rO = cute.make_rmem_tensor(acc_O.shape, self.dtype)
        rO.store(acc_O.load().to(self.dtype))
        sO = pointer_swizzled_tile(sO.iterator, self.dtype, self.tile_m, self.head_dim)
        tOsO = cute.composition(sO, self.layouts(1)["O"])[(st.tq, (None, None, None))]
        vector_copy(rO, tOsO, store_vector(self.atom.c_o))
