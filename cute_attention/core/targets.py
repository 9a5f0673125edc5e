"""Compile targets (``sm_80``, ``sm_90a``, ...): their SM number and what the hardware of each offers.

Plain Python on target names, no GPU needed: the compile cache, the kernels' ``why_not`` and the CLI share them.
"""

from __future__ import annotations

from cutlass.cutlass_dsl import SMEM_CAPACITY_MAP

MIN_SM = 80  # the CuTe DSL emits code for sm_80 and newer only


def sm_version(target: str) -> int:
    """``sm_90a`` -> 90."""
    return int("".join(c for c in target.removeprefix("sm_") if c.isdigit()))


def known_targets() -> list[str]:
    """Targets the DSL can compile these kernels for: every SM it knows from sm_80 on, and the architecture-
    specific (``a``) form of sm_90 and newer (``sm_90a`` is what a Hopper GPU runs)."""
    out = []
    for base in sorted(SMEM_CAPACITY_MAP, key=sm_version):
        if sm_version(base) < MIN_SM:
            continue
        out.append(base)
        if sm_version(base) >= 90:
            out.append(base + "a")
    return out


def check_target(target: str) -> str:
    """``target`` if it is known, else ``ValueError`` listing the known ones."""
    if target not in known_targets():
        raise ValueError(f"unknown target {target!r}; known: {', '.join(known_targets())}")
    return target


def smem_capacity(target: str) -> int:
    """Shared memory one CTA may use on ``target`` (``sm_90a`` counts as ``sm_90``), from the DSL's table."""
    base = target[:-1] if target.endswith(("a", "f")) else target
    if base not in SMEM_CAPACITY_MAP:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(known_targets())}")
    return SMEM_CAPACITY_MAP[base]


def has_pdl(target: str) -> bool:
    """Programmatic dependent launch (``griddepcontrol``): sm_90 and newer."""
    return sm_version(target) >= 90
