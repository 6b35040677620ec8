"""ELF section handling for fat binaries: the ELF header, the section header table, and the
sections CUDA puts its GPU code in (``.nv_fatbin``, ``__nv_relfatbin``; their wrappers in
``.nvFatBinSegment``). Only 64-bit little-endian ELF (x86-64, aarch64) is handled.

The section header table usually sits at the end of the file, after the data, with the section
name table just before it, so a reader that streams a file learns where the sections are
only when it has passed them; ``codec.cudascan`` copes with that."""

from __future__ import annotations

import struct
from dataclasses import dataclass

ELF_MAGIC = b"\x7fELF"
ELF_HEADER_SIZE = 64
SECTION_HEADER_SIZE = 64
SHT_NOBITS = 8

FATBIN_SECTIONS = (".nv_fatbin", "__nv_relfatbin")
WRAPPER_SECTION = ".nvFatBinSegment"

_SH = struct.Struct("<IIQQQQIIQQ")


def is_elf64le(head: bytes | bytearray | memoryview) -> bool:
    """Whether ``head`` starts a 64-bit little-endian ELF file."""
    return len(head) >= ELF_HEADER_SIZE and bytes(head[:6]) == ELF_MAGIC + b"\x02\x01"


@dataclass(frozen=True)
class ElfHeader:
    """Where an ELF file's section header table is."""

    shoff: int
    shnum: int
    shstrndx: int

    @property
    def table_size(self) -> int:
        return self.shnum * SECTION_HEADER_SIZE


def parse_elf_header(head: bytes | bytearray | memoryview, file_size: int) -> ElfHeader | None:
    """The section table position of a 64-bit little-endian ELF file, or None when ``head``
    is not one or its table does not fit in ``file_size`` bytes."""
    if not is_elf64le(head):
        return None
    shoff, = struct.unpack_from("<Q", head, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
    if shentsize != SECTION_HEADER_SIZE or shnum == 0 or shstrndx >= shnum:
        return None
    if shoff < ELF_HEADER_SIZE or shoff + shnum * SECTION_HEADER_SIZE > file_size:
        return None
    return ElfHeader(shoff, shnum, shstrndx)


@dataclass(frozen=True)
class Section:
    """One section header: name offset (into the name table), type, file range."""

    name_offset: int
    type: int
    offset: int
    size: int

    @property
    def has_data(self) -> bool:
        return self.type != SHT_NOBITS


def parse_section_table(table: bytes | bytearray | memoryview, count: int) -> list[Section]:
    """The section headers in ``table`` (``count`` entries of 64 bytes)."""
    out = []
    for i in range(count):
        name, stype, _flags, _addr, offset, size, _link, _info, _align, _entsize = \
            _SH.unpack_from(table, i * SECTION_HEADER_SIZE)
        out.append(Section(name, stype, offset, size))
    return out


def section_name(names: bytes | bytearray, section: Section) -> str | None:
    """The section's name from the name table bytes, or None when it points outside."""
    start = section.name_offset
    if start >= len(names):
        return None
    end = names.find(b"\0", start)
    if end < 0:
        return None
    return bytes(names[start:end]).decode("ascii", "replace")
