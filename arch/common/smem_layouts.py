"""Swizzled shared-memory layouts for Q/K/V/O tiles (shared by every generation that uses ldmatrix).

A tile row of ``head_dim`` 16-bit elements is cut into atoms of 64, 32 or 16 columns (128, 64 or
32 bytes); inside an 8-row atom the 16-byte chunk index is XOR-ed with the row, so that the eight
rows an ``ldmatrix`` reads, and the eight 16-byte vectors a warp's cp.async writes, fall in
distinct banks (TurboMind's ``SmemLayoutV2<.., Swizzle<3,3,3>>``).
"""

from __future__ import annotations

import cutlass.cute as cute

SMEM_ATOM_ROWS = 8


def smem_atom_cols(head_dim: int) -> int:
    """Width in elements of one swizzle atom for a 16-bit tile with ``head_dim`` columns."""
    for cols in (64, 32, 16):
        if head_dim % cols == 0:
            return cols
    raise ValueError(f"head_dim must be a multiple of 16, got {head_dim}")


def swizzle_bits(head_dim: int) -> int:
    return {64: 3, 32: 2, 16: 1}[smem_atom_cols(head_dim)]


def smem_layout_atom(head_dim: int) -> cute.ComposedLayout:
    """Swizzled ``(8, cols)`` row-major atom for 16-bit elements."""
    cols = smem_atom_cols(head_dim)
    plain = cute.make_layout((SMEM_ATOM_ROWS, cols), stride=(cols, 1))
    return cute.make_composed_layout(cute.make_swizzle(swizzle_bits(head_dim), 3, 3), 0, plain)


def smem_tile_layout(rows: int, head_dim: int, stages: int | None = None) -> cute.ComposedLayout:
    """``(rows, head_dim)`` tile, or a ring of ``stages`` such tiles ``(rows, head_dim, stages)``."""
    atom = smem_layout_atom(head_dim)
    if stages is None:
        return cute.tile_to_shape(atom, (rows, head_dim), (0, 1))
    return cute.tile_to_shape(atom, (rows, head_dim, stages), (0, 1, 2))


def smem_tile(ptr: cute.Pointer, dtype, rows: int, head_dim: int, stages: int | None = None) -> cute.Tensor:
    """A swizzled shared-memory tile (or ring of tiles) at ``ptr``."""
    return cute.make_tensor(cute.recast_ptr(ptr, dtype=dtype), smem_tile_layout(rows, head_dim, stages))


def transposed_view(t: cute.Tensor) -> cute.Tensor:
    """View an ``(rows, cols, ...)`` shared-memory tensor as ``(cols, rows, ...)`` (V for P·V)."""
    shape = (t.shape[1], t.shape[0], *t.shape[2:])
    order = (1, 0, *range(2, cute.rank(t)))
    return cute.composition(t, cute.make_ordered_layout(shape, order=order))


def pointer_swizzled_tile(ptr: cute.Pointer, dtype, rows: int, head_dim: int, stages: int | None = None) -> cute.Tensor:
    """The same tile as :func:`smem_tile` with the swizzle carried by the pointer and a plain layout.

    A pointer's swizzle acts on byte addresses (16-bit elements: ``S<b, 4, 3>`` for the layout's
    ``S<b, 3, 3>``), so it needs ``ptr`` aligned to the swizzle's span (the kernel aligns to 1 KiB). Thread
    partitions of such a tile keep plain layouts, which ``cute.copy`` takes for stores from registers.
    """
    cols = smem_atom_cols(head_dim)
    atom = cute.make_layout((SMEM_ATOM_ROWS, cols), stride=(cols, 1))
    if stages is None:
        layout = cute.tile_to_shape(atom, (rows, head_dim), (0, 1))
    else:
        layout = cute.tile_to_shape(atom, (rows, head_dim, stages), (0, 1, 2))
    byte_shift = (dtype.width // 8).bit_length() - 1
    swizzle = cute.make_swizzle(swizzle_bits(head_dim), 3 + byte_shift, 3)
    return cute.make_tensor(cute.recast_ptr(ptr, swizzle_=swizzle, dtype=dtype), layout)
