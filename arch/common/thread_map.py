"""Thread map: how a CTA's threads cover a ``(rows, cols)`` tile with 16-byte accesses (narrower ones for tiles whose
rows are shorter, such as a quantized cache's (scale, zero) pairs).

Threads are raked row-major: ``threads_per_row`` consecutive threads read consecutive 16-byte
vectors of one row (one coalesced segment), the next group takes the next row, and the pattern
repeats down the tile (TurboMind's ``RakedThreadMap``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cutlass.cute as cute

ACCESS_BITS = 128


@dataclass(frozen=True)
class ThreadMap:
    threads: int
    cols: int
    elem_bits: int = 16
    access_bits: int = ACCESS_BITS

    @property
    def vec(self) -> int:
        """Elements per access."""
        return self.access_bits // self.elem_bits

    @property
    def threads_per_row(self) -> int:
        """Largest power of two <= 16 that divides the row's vector count and the thread count."""
        vecs = self.cols // self.vec
        tpr = 1
        while tpr * 2 <= min(vecs, 16) and vecs % (tpr * 2) == 0 and self.threads % (tpr * 2) == 0:
            tpr *= 2
        return tpr

    @property
    def rows_per_pass(self) -> int:
        return self.threads // self.threads_per_row

    def thread_layout(self) -> cute.Layout:
        return cute.make_layout(
            (self.rows_per_pass, self.threads_per_row), stride=(self.threads_per_row, 1)
        )

    def value_layout(self) -> cute.Layout:
        return cute.make_layout((1, self.vec))

    def tiled_copy(self, atom: cute.CopyAtom) -> cute.TiledCopy:
        return cute.make_tiled_copy_tv(atom, self.thread_layout(), self.value_layout())
