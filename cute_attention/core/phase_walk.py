"""The three-phase walk over KV tiles that every mainloop strategy shares (TurboMind's mask_iter_back/front).

Tiles are walked from the last one down: the first tile is peeled (full mask, first-tile softmax), then
the rest of the ``back`` tiles (right bound / seqlen_k mask), the ``mid`` tiles (no mask), and the
``front`` tiles (left bound of a sliding window only). A strategy supplies ``step(a, t, mask, is_first,
*extra)``; ``extra`` carries its own per-CTA state (e.g. register staging buffers).
"""

from __future__ import annotations

import cutlass

from cute_attention.core.index_math import imax, imin
from cute_attention.core.masks import TileMask


@cutlass.cute.jit
def walk_phases(strategy, a, *extra):
    """Call ``strategy.step`` for walk steps ``0 .. total-1`` with each phase's mask (``total > 0``)."""
    total = a.sched.n_hi - a.sched.n_lo
    back_mask = TileMask.back(a.mask)
    strategy.step(a, 0, back_mask, True, *extra)
    back = imax(a.sched.back, 1)
    front = imin(a.sched.front, total - back)
    mid_end = total - front
    for t in cutlass.range(1, back, unroll=1):
        strategy.step(a, t, back_mask, False, *extra)
    for t in cutlass.range(back, mid_end, unroll=1):
        strategy.step(a, t, None, False, *extra)
    if cutlass.const_expr(a.mask.has_left):
        for t in cutlass.range(mid_end, total, unroll=1):
            strategy.step(a, t, TileMask.front(a.mask), False, *extra)
