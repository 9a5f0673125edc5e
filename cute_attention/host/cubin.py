"""Facts read straight from a compiled cubin's ELF, no disassembler needed: registers per kernel and the SM it
was built for. The ELF layout differs between the CUDA 12 and CUDA 13 toolchains (ABI versions 7 and 8), and
only these header fields are relied on."""

from __future__ import annotations

import struct

EIATTR_REGCOUNT = 0x2F
EIFMT_SVAL = 0x04
ELFOSABI_CUDA_V1 = 0x33  # CUDA 12 toolchains: e_flags bits 0-7 hold the SM
ELFOSABI_CUDA_V2 = 0x41  # CUDA 13 toolchains: e_flags bits 8-15 hold the SM


def _check(cubin: bytes) -> None:
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2:
        raise ValueError("not a 64-bit ELF cubin")


def cubin_sm(cubin: bytes) -> int:
    """The SM number the cubin's code is for (``80`` for sm_80, ``90`` for sm_90 and sm_90a), from ``e_flags``."""
    _check(cubin)
    flags = struct.unpack_from("<I", cubin, 0x30)[0]
    osabi = cubin[7]
    if osabi == ELFOSABI_CUDA_V1:
        return flags & 0xFF
    if osabi == ELFOSABI_CUDA_V2:
        return (flags >> 8) & 0xFF
    raise ValueError(f"unknown CUDA ELF OS/ABI 0x{osabi:02x}")


def register_counts(cubin: bytes) -> list[int]:
    """Registers per kernel from the cubin's ``.nv.info*`` sections (EIATTR_REGCOUNT), for any SM."""
    _check(cubin)
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
