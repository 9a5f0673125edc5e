"""A row op for testing the prologue slot (the library registers none yet): multiply the rows by a constant."""

from dataclasses import dataclass

import cutlass.cute as cute
from cutlass import Float32


@dataclass(frozen=True)
class ScaleRows:
    """``x -> x · factor`` in fp32, rounded back to the rows' type (exact for a power of two)."""

    factor: float

    @cute.jit
    def apply(self, frag: cute.Tensor, coords: cute.Tensor, where):
        frag.store((frag.load().to(Float32) * self.factor).to(frag.element_type))
