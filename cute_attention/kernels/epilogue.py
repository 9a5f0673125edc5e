"""The attention epilogue (TurboMind's ``Impl::Merge`` / ``StoreO`` and the split-K partial store): finish the
online softmax, merge warp groups that split the KV tile, normalize, then write O and the LSE, or with split-K the
split's fp32 partial O and LSE for the reduction kernel.

Written against the Impl contract only (``rows_cols_view``, ``partition_O``, ``store_o``, ``merge`` and the
state's ``tOcO_mn`` / ``ws``), so any kernel body whose Impl keeps that contract ends the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cutlass
import cutlass.cute as cute
from cutlass import Float32

from cute_attention.arch.common.gmem_iterators import StoreIterator
from cute_attention.core.contracts import Impl
from cute_attention.kernels.tile_work import TileWork
from cute_attention.kv.row_source import row_view


@dataclass(frozen=True)
class AttentionEpilogue:
    """The epilogue of one compile-time configuration."""

    impl: Impl
    dtype: Any
    tile_m: int
    head_dim: int
    threads: int
    split_kv: bool
    pack_gqa: bool
    # the threads that run the epilogue meet at named barrier ``barrier_id`` (a warp-specialized kernel's
    # consumers, without its producer warps); None: the whole CTA at barrier 0
    barrier_id: int | None = None

    def sync(self):
        """Barrier of the epilogue's threads."""
        if self.barrier_id is None:
            cute.arch.barrier()
        else:
            cute.arch.barrier(barrier_id=self.barrier_id, number_of_threads=self.threads)

    @cute.jit
    def normalize(self, st, softmax, acc_O: cute.Tensor, smem_merge) -> cute.Tensor:
        """Finish the row sums, merge the ``warps_s`` groups through ``smem_merge`` (the drained K/V ring), divide O
        by L; return the natural-log LSE of this thread's rows."""
        impl = self.impl
        softmax.reduce_sum()
        self.sync()
        if cutlass.const_expr(impl.warps_s > 1):
            impl.merge(st, softmax, acc_O, cute.recast_ptr(smem_merge, dtype=Float32))
        return softmax.finalize(impl.rows_cols_view(acc_O))

    @cute.jit
    def write(self, tidx, st, acc_O: cute.Tensor, lse: cute.Tensor, sO: cute.Tensor, mO: cute.Tensor,
              mLSE: cute.Tensor | None, work: TileWork):
        """Write the result: with ``split_kv`` the partials (group 0 only), else O through ``sO`` (16-byte stores)
        and the LSE."""
        if cutlass.const_expr(self.split_kv):
            if st.ws == 0:  # (always true with warps_s == 1)
                self.write_partial(st, acc_O, lse, mO, mLSE, work)
        else:
            if cutlass.const_expr(self.impl.warps_s == 1):
                self.write_group(st, acc_O, lse, sO, mLSE, work)
            else:
                if st.ws == 0:
                    self.write_group(st, acc_O, lse, sO, mLSE, work)
            self.sync()
            o_it = StoreIterator(self.dtype, self.tile_m, self.head_dim, self.threads)
            gO = work.o_rows
            if cutlass.const_expr(not self.pack_gqa):
                # (tile_m, head_dim)
                gO = cute.local_tile(mO[work.batch, None, work.head, None], (self.tile_m, self.head_dim),
                                     (work.q_tile, 0))
            o_it.store(o_it.partition(tidx, sO, gO, dst_rows=self.pack_gqa), work.rows_q - work.q_start)

    @cute.jit
    def write_group(self, st, acc_O: cute.Tensor, lse: cute.Tensor, sO: cute.Tensor, mLSE: cute.Tensor | None,
                    work: TileWork):
        """The warp group holding the final result writes O to shared memory and the LSE to global."""
        self.impl.store_o(st, acc_O, sO)
        self.write_lse(st, lse, mLSE, work)

    @cute.jit
    def write_lse(self, st, lse: cute.Tensor, mLSE: cute.Tensor | None, work: TileWork):
        """The LSE of this thread's valid rows (``work.q_rows``: PackGQA's row → (token, head) map, else row = token
        of ``work.head``); nothing without ``mLSE``."""
        q_rows = work.q_rows
        if cutlass.const_expr(mLSE is not None):
            if st.tOcO_mn[0, 0][1] == 0:
                for r in cutlass.range_constexpr(cute.size(lse)):
                    row = work.q_start + st.tOcO_mn[r, 0][0]
                    if row < work.rows_q:
                        if cutlass.const_expr(q_rows is None):
                            mLSE[work.batch, work.head, row] = lse[r]
                        else:
                            mLSE[work.batch, q_rows.coords(st.tOcO_mn[r, 0][0])[1], row // q_rows.group] = lse[r]

    @cute.jit
    def write_partial(self, st, acc_O: cute.Tensor, lse: cute.Tensor, mOp: cute.Tensor, mLSEp: cute.Tensor,
                      work: TileWork):
        """Split-K: this split's normalized O (fp32, straight from registers) and LSE, valid rows only."""
        impl = self.impl
        q_rows = work.q_rows
        split, batch = work.split, work.batch
        acc_O_mn = impl.rows_cols_view(acc_O)
        if cutlass.const_expr(q_rows is None):
            # (tile_m, head_dim) this split's partial O of the query tile
            gO = cute.local_tile(mOp[split, batch, None, work.head, None], (self.tile_m, self.head_dim),
                                 (work.q_start // self.tile_m, 0))
            tOgO_mn = impl.rows_cols_view(impl.partition_O(st, gO))
        for r in cutlass.range_constexpr(cute.size(acc_O_mn.shape[0])):
            row = work.q_start + st.tOcO_mn[r, 0][0]
            if cutlass.const_expr(q_rows is None):
                if row < work.rows_q:
                    cute.autovec_copy(acc_O_mn[r, None], tOgO_mn[r, None])
                    if st.tOcO_mn[0, 0][1] == 0:
                        mLSEp[split, batch, work.head, row] = lse[r]
            else:
                token, h = q_rows.coords(st.tOcO_mn[r, 0][0])
                # (tile_m, head_dim) view whose every row is this row's partial O
                gO_row = row_view(mOp[split, batch, token, h, None].iterator, self.tile_m, self.head_dim)
                tOgO_row = impl.rows_cols_view(impl.partition_O(st, gO_row))[r, None]
                if row < work.rows_q:
                    cute.autovec_copy(acc_O_mn[r, None], tOgO_row)
                    if st.tOcO_mn[0, 0][1] == 0:
                        mLSEp[split, batch, h, token] = lse[r]
