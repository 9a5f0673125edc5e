"""The warp arrangement every Impl shares and its cross-warp merge (TurboMind's ``Impl::Merge``).

An Impl is ``warps_q × warps_s`` warps: ``warps_q`` split the query rows, ``warps_s`` groups each take a slice of
every KV tile and run their own online softmax; at the end the groups combine (M, L, O) through shared memory.
:class:`WarpGroupImpl` holds that arrangement for both Impl bases (fragment and shared-operand); the merge needs
from an Impl ``tile_m``, ``head_dim``, ``warps_s``, ``group_threads`` and ``rows_cols_view``, and from its state
``tq``, ``ws`` and ``tScS_mn`` (row coordinates, and columns local to the group's slice).
"""

from __future__ import annotations

import cutlass
import cutlass.cute as cute
from cutlass import Float32

from cute_attention.core.softmax import OnlineSoftmax

WARP = 32


class WarpGroupImpl:
    """Base of the Impl bases: dtype, head dim and the ``warps_q × warps_s`` arrangement of a tile recipe, and the
    merge of the ``warps_s`` groups."""

    def __init__(self, dtype: type[cutlass.Numeric], head_dim: int, tiles):
        self.dtype = dtype
        self.head_dim = head_dim
        self.tile_m = tiles.tile_m
        self.tile_n = tiles.tile_n
        self.warps_q = tiles.warps_q
        self.warps_s = tiles.warps_s
        self.threads = tiles.threads
        self.rescale_threshold = tiles.rescale_threshold
        self.group_threads = self.warps_q * WARP
        self.slice_n = self.tile_n // self.warps_s

    def merge_bytes(self) -> int:
        return merge_bytes(self)

    @cute.jit
    def merge(self, st, softmax: OnlineSoftmax, acc_O: cute.Tensor, smem_merge: cute.Pointer):
        """Combine the ``warps_s`` groups' (M, L, O) through shared memory (:func:`merge_groups`)."""
        merge_groups(self, st, softmax, acc_O, smem_merge)


def merge_bytes(impl) -> int:
    """Shared memory the merge needs: partial O of every extra group plus every group's M and L (fp32)."""
    if impl.warps_s == 1:
        return 0
    return (impl.warps_s - 1) * impl.tile_m * impl.head_dim * 4 + 2 * impl.warps_s * impl.tile_m * 4


@cute.jit
def merge_groups(impl, st, softmax: OnlineSoftmax, acc_O: cute.Tensor, smem_merge: cute.Pointer):
    """Combine an Impl's ``warps_s`` groups' (M, L, O) through shared memory; group 0 ends with the result.

    ``M* = max Mi``, ``L* = Σ exp2((Mi − M*)·s)·Li``, ``O* = Σ exp2((Mi − M*)·s)·Oi``. The caller has
    drained every copy into the ring, which ``smem_merge`` aliases, and synchronized.
    """
    rows = softmax.num_rows
    frag = cute.size(acc_O)
    # (tile_m, warps_s) running maxima and sums of every group
    sM = cute.make_tensor(smem_merge, cute.make_layout((impl.tile_m, impl.warps_s), stride=(1, impl.tile_m)))
    sL = cute.make_tensor(sM.iterator + impl.tile_m * impl.warps_s, sM.layout)
    # (frag, group_threads, warps_s - 1) partial O of groups 1.., in fragment order (conflict-free)
    sO = cute.make_tensor(
        sM.iterator + 2 * impl.tile_m * impl.warps_s,
        cute.make_layout((frag, impl.group_threads, impl.warps_s - 1),
                         stride=(impl.group_threads, 1, frag * impl.group_threads)),
    )
    acc_O_mn = impl.rows_cols_view(acc_O)
    row_max = softmax.row_max
    row_sum = softmax.row_sum
    lane_col0 = st.tScS_mn[0, 0][1] == 0
    if lane_col0:
        for r in cutlass.range_constexpr(rows):
            sM[st.tScS_mn[r, 0][0], st.ws] = row_max[r]
    cute.arch.barrier()
    for r in cutlass.range_constexpr(rows):
        row = st.tScS_mn[r, 0][0]
        m_all = sM[row, 0]
        for w in cutlass.range_constexpr(1, impl.warps_s):
            m_all = cute.arch.fmax(m_all, sM[row, w])
        safe = 0.0 if m_all == -Float32.inf else m_all
        alpha = cute.math.exp2((row_max[r] - safe) * softmax.scale_log2, fastmath=True)
        row_max[r] = m_all
        row_sum[r] = row_sum[r] * alpha
        acc_O_mn[r, None].store(acc_O_mn[r, None].load() * alpha)
    if lane_col0:
        for r in cutlass.range_constexpr(rows):
            sL[st.tScS_mn[r, 0][0], st.ws] = row_sum[r]
    if st.ws > 0:
        for i in cutlass.range(frag, unroll_full=True):
            sO[i, st.tq, st.ws - 1] = acc_O[i]
    cute.arch.barrier()
    if st.ws == 0:
        for i in cutlass.range(frag, unroll_full=True):
            total = acc_O[i]
            for w in cutlass.range_constexpr(impl.warps_s - 1):
                total = total + sO[i, st.tq, w]
            acc_O[i] = total
        for r in cutlass.range_constexpr(rows):
            row = st.tScS_mn[r, 0][0]
            total = sL[row, 0]
            for w in cutlass.range_constexpr(1, impl.warps_s):
                total = total + sL[row, w]
            row_sum[r] = total
