"""Synthetic CUDA fat binaries and ELF files for the tests: containers built from entry
descriptions, and a minimal 64-bit ELF file with named sections (not loadable, but laid out
as linkers do: data, then the section name table, then the section header table)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple, Sequence

from slimmer.codec.fatbin import (
    FLAG_ARCH_SPECIFIC,
    FLAG_COMPRESSED_ZSTD,
    FLAG_FAMILY_SPECIFIC,
    entry_header_bytes,
    header_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "testdata" / "cuda" / "libfixture.so"
PTX, CUBIN = 1, 2


class Code(NamedTuple):
    """One entry to build: kind, SM number, variant ('', 'a', 'f'), payload length."""

    kind: int
    arch: int
    variant: str = ""
    size: int = 200
    compressed: bool = False


def cubin(arch: int, variant: str = "", size: int = 200, compressed: bool = False) -> Code:
    return Code(CUBIN, arch, variant, size, compressed)


def ptx(arch: int, variant: str = "", size: int = 120) -> Code:
    return Code(PTX, arch, variant, size)


def entry(code: Code, fill: int) -> bytes:
    """An entry: header, then a payload of ``fill`` bytes padded to 8 with zeros."""
    flags = 0x11 | {"": 0, "a": FLAG_ARCH_SPECIFIC, "f": FLAG_FAMILY_SPECIFIC}[code.variant]
    padded = (code.size + 7) & ~7
    extra = {}
    if code.compressed:
        flags |= FLAG_COMPRESSED_ZSTD
        extra = {"compressed_size": code.size, "uncompressed_size": code.size * 3}
    ext = bytes(48) if code.arch >= 100 else b""
    return (entry_header_bytes(code.kind, padded, code.arch, flags=flags, extension=ext, **extra)
            + bytes([fill]) * code.size + bytes(padded - code.size))


def container(codes: Sequence[Code], first_fill: int = 1) -> bytes:
    """A container of ``codes``; entry i's payload bytes are ``first_fill + i``."""
    body = b"".join(entry(c, (first_fill + i) % 256) for i, c in enumerate(codes))
    return header_bytes(len(body)) + body


def elf(sections: Sequence[tuple[str, bytes]], *, names_after_table: bool = False) -> bytes:
    """A 64-bit little-endian ELF file holding ``sections`` (8-aligned, in order)."""
    names = b"\0" + b"".join(n.encode() + b"\0" for n, _ in sections) + b".shstrtab\0"
    out = bytearray(64)
    headers = [struct.pack("<IIQQQQIIQQ", *([0] * 10))]
    pos = 1
    for name, data in sections:
        out += bytes(-len(out) % 8)
        headers.append(struct.pack("<IIQQQQIIQQ", pos, 1, 2, len(out), len(out), len(data),
                                   0, 0, 8, 0))
        pos += len(name) + 1
        out += data
    shstr_name = pos
    if not names_after_table:
        names_at = len(out)
        out += names
    out += bytes(-len(out) % 8)
    shoff = len(out)
    if names_after_table:
        names_at = shoff + 64 * (len(sections) + 2)
    headers.append(struct.pack("<IIQQQQIIQQ", shstr_name, 3, 0, 0, names_at, len(names),
                               0, 0, 1, 0))
    out += b"".join(headers)
    if names_after_table:
        out += names
    out[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", out, 16, 3, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64,
                     len(headers), len(headers) - 1)
    return bytes(out)


def cuda_elf(*containers: bytes, text: bytes = b"\x90" * 256) -> bytes:
    """An ELF file with ``text`` and the containers back to back in ``.nv_fatbin``."""
    return elf([(".text", text), (".nv_fatbin", b"".join(containers)),
                (".nvFatBinSegment", bytes(24 * len(containers)))])
