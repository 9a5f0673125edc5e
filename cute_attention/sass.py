"""Read a compiled cubin without a GPU: disassemble with nvdisasm, count registers, spills, instructions."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field


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
    arch: str | None
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


EIATTR_REGCOUNT = 0x2F
EIFMT_SVAL = 0x04


def register_counts(cubin: bytes) -> list[int]:
    """Registers per kernel from the cubin's ``.nv.info*`` sections (EIATTR_REGCOUNT), for any SM."""
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2:
        raise ValueError("not a 64-bit ELF cubin")
    shoff = struct.unpack_from("<Q", cubin, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", cubin, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx]
    counts = []
    for h in headers:
        name_off, offset, size = h[0], h[4], h[5]
        end = cubin.index(b"\0", strtab[4] + name_off)
        name = cubin[strtab[4] + name_off:end].decode()
        if not name.startswith(".nv.info"):
            continue
        pos = offset
        while pos + 4 <= offset + size:
            fmt, attr, length = struct.unpack_from("<BBH", cubin, pos)
            if fmt == EIFMT_SVAL:
                if attr == EIATTR_REGCOUNT:
                    counts.append(struct.unpack_from("<II", cubin, pos + 4)[1])
                pos += 4 + length
            else:
                pos += 4  # NVAL / BVAL / HVAL entries keep their value inside the 4-byte header
    return counts


def parse(sass: str, registers: int | None = None) -> SassStats:
    arch = re.search(r"EF_CUDA_(SM\d+)", sass)
    ops = Counter(m.group(1) for m in _INSN.finditer(sass))
    return SassStats(registers, arch.group(1).lower() if arch else None, ops)


def inspect_cubin(cubin: bytes) -> SassStats:
    regs = register_counts(cubin)
    return parse(disassemble(cubin), max(regs) if regs else None)
