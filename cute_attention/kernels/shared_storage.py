"""Shared memory as a composed struct (the DSL's ``cute.struct`` / ``cute.union``; CUTLASS's ``SharedStorage``).

A kernel object lists its parts, each a named byte range with an alignment, contributed by the block that owns
it: the Impl's Q tile and scratch, the mainloop's K/V ring, the epilogue's merge buffer. Parts that are never live
at the same time share bytes through a union (the warp merge reuses the drained ring; with Q in registers Q's tile
and the ring overlap). :func:`make_storage` turns the list into one struct type; the kernel allocates it once and
reads each part's pointer by name. A later part (a parameter ring, an mbarrier array) is one more entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cutlass
import cutlass.cute as cute

SMEM_ALIGN = 1024  # every tile part starts on a 1 KiB boundary (the swizzle atoms' span)


@dataclass(frozen=True)
class SmemPart:
    """``size`` bytes named ``name``, aligned to ``align`` bytes."""

    name: str
    size: int
    align: int = SMEM_ALIGN

    @property
    def empty(self) -> bool:
        return self.size == 0

    def member(self):
        """The struct member type."""
        return cute.struct.Align[cute.struct.MemRange[cutlass.Int8, self.size], self.align]


@dataclass(frozen=True)
class SmemUnion:
    """Parts that share their bytes (never live at the same time), named ``name``."""

    name: str
    parts: tuple[SmemPart, ...]

    @property
    def empty(self) -> bool:
        return all(p.empty for p in self.parts)

    def member(self):
        """The struct member type: a ``cute.union`` of the non-empty parts, aligned to the strictest of them."""
        parts = [p for p in self.parts if not p.empty]
        union = cute.union(type(self.name, (), {"__annotations__": {p.name: p.member() for p in parts}}))
        return cute.struct.Align[union, max(p.align for p in parts)]


def make_storage(name: str, fields: Sequence[SmemPart | SmemUnion]):
    """A ``cute.struct`` type with one member per non-empty part, in order (a union for parts that share bytes)."""
    annotations = {f.name: f.member() for f in fields if not f.empty}
    return cute.struct(type(name, (), {"__annotations__": annotations}))


def storage_bytes(storage) -> int:
    """Dynamic shared memory a launch reserves for ``storage``: its size plus room to align its base."""
    return storage.__sizeof__() + SMEM_ALIGN
