"""Read a compiled cubin without a GPU: disassemble with nvdisasm, count registers, spills, instructions.

Registers and the SM come from the cubin's ELF (:mod:`cute_attention.host.cubin`), not from the disassembler's
text, whose header lines differ between the CUDA 12 and CUDA 13 tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field

from cute_attention.host.cubin import cubin_sm, register_counts


def find_nvdisasm() -> str | None:
    """nvdisasm from PATH, CUDA_HOME, or the ``nvidia-cuda-nvdisasm`` wheel."""
    found = shutil.which("nvdisasm")
    if found:
        return found
    cands = []
    for home in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if home:
            cands.append(os.path.join(home, "bin", "nvdisasm"))
    try:
        import nvidia

        for base in nvidia.__path__:
            for sub in sorted(os.listdir(base)):
                cands.append(os.path.join(base, sub, "bin", "nvdisasm"))
    except ImportError:
        pass
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def disassemble(cubin: bytes) -> str:
    tool = find_nvdisasm()
    if tool is None:
        raise RuntimeError("nvdisasm not found: pip install nvidia-cuda-nvdisasm")
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        path = f.name
    try:
        out = subprocess.run([tool, "-c", path], capture_output=True, text=True, check=True)
    finally:
        os.unlink(path)
    return out.stdout


@dataclass
class SassStats:
    registers: int | None
    sm: int | None  # the SM the code is for (80, 90, ...)
    ops: Counter = field(default_factory=Counter)

    @property
    def spills(self) -> int:
        """Local-memory instructions of every width (LDL, LDL.LU, LDL.64, STL, STL.128, ...)."""
        return self.count("LDL") + self.count("STL")

    def count(self, prefix: str) -> int:
        return sum(n for op, n in self.ops.items() if op == prefix or op.startswith(prefix + "."))

    def variants(self, prefix: str) -> list[str]:
        return sorted(op for op in self.ops if op == prefix or op.startswith(prefix + "."))


_INSN = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")


def parse(sass: str, registers: int | None = None, sm: int | None = None) -> SassStats:
    ops = Counter(m.group(1) for m in _INSN.finditer(sass))
    return SassStats(registers, sm, ops)


def inspect_cubin(cubin: bytes) -> SassStats:
    regs = register_counts(cubin)
    return parse(disassemble(cubin), max(regs) if regs else None, cubin_sm(cubin))


# one instruction's text in a disassembly line (to its ';'): what snapshots hash and loops are cut from
INSN_TEXT = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?;)")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def loop_bodies(sass: str) -> list[list[str]]:
    """The instruction texts of every loop, innermost first: the span from a backward branch's label to the branch
    (``BRA `(.L_x_N)`` to a label above it)."""
    lines: list[str] = []
    labels: dict[str, int] = {}
    for raw in sass.splitlines():
        if m := _LABEL.match(raw):
            labels[m.group(1)] = len(lines)
        elif m := INSN_TEXT.search(raw):
            lines.append(m.group(1))
    loops = []
    for i, text in enumerate(lines):
        target = _TARGET.search(text) if " BRA" in f" {text}" else None
        if target and labels.get(target.group(1), i + 1) <= i:
            loops.append(lines[labels[target.group(1)]:i + 1])
    return sorted(loops, key=len)
