"""The CUDA fat binary container format (what nvcc's ``fatbinary`` writes into ``.nv_fatbin``),
as far as pruning needs it. Nothing here decompresses or interprets GPU code.

A container is a 16-byte header followed by entries, back to back, with no terminator::

    header  u32 magic 0xBA55ED50 | u16 version (1) | u16 header size (16) | u64 bytes of entries
    entry   u16 kind (1 PTX, 2 cubin ELF) | u16 version (0x0101) | u32 entry header size
            u64 payload size (padded to 8; the next entry starts after it)
            u32 compressed size (0 when not compressed) | u32 offset of the extended header
            u16 code version minor | u16 major | u32 SM architecture (90 for sm_90)
            u32 name offset | u32 name length | u64 flags | u64 reserved
            u64 uncompressed size (when compressed) | extended header (to entry header size)
            payload

Entry flags: 0x1 64-bit, 0x2 debug, 0x10 Linux, 0x1000/0x2000 compressed (LZ-style, CUDA
11-12), 0x8000 compressed with zstd (CUDA 12.8+), 0x100000 arch-specific code (``sm_90a``),
0x200000 family-specific code (``sm_100f``). These facts were read off nvcc 13's output and
the PyPI CUDA wheels with ``cuobjdump`` and agree with public reverse-engineering notes.

Containers start 8-aligned and sit back to back in the section; each is registered with the
CUDA runtime by a 24-byte wrapper in ``.nvFatBinSegment`` (u32 magic 0x466243B1, u32 version,
u64 pointer to the container, u64 pointer to a file name or prelinked binaries) that a
relocation points at the container's address.
"""

from __future__ import annotations

import struct

from slimmer.gpu.arch import Arch, Variant
from slimmer.gpu.model import EntryKind

MAGIC = 0xBA55ED50
MAGIC_BYTES = struct.pack("<I", MAGIC)
WRAPPER_MAGIC = 0x466243B1
WRAPPER_SIZE = 24
HEADER_SIZE = 16
ENTRY_BASE = 64            # the fixed part of an entry header
ENTRY_VERSION = 0x0101
MAX_ENTRY_HEADER = 4096    # no real entry header comes near; bigger means this is not one
ALIGN = 8

FLAG_64BIT = 0x1
FLAG_COMPRESSED_LZ = 0x1000
FLAG_COMPRESSED_LZ4 = 0x2000
FLAG_COMPRESSED_ZSTD = 0x8000
FLAG_ARCH_SPECIFIC = 0x100000
FLAG_FAMILY_SPECIFIC = 0x200000
COMPRESSION_FLAGS = FLAG_COMPRESSED_LZ | FLAG_COMPRESSED_LZ4 | FLAG_COMPRESSED_ZSTD

_HEADER = struct.Struct("<IHHQ")
_ENTRY = struct.Struct("<HHIQIIHHIIIQQQ")
assert _HEADER.size == HEADER_SIZE and _ENTRY.size == ENTRY_BASE


class FormatError(ValueError):
    """Bytes that are not (or not quite) a fat binary container or entry header."""


def parse_header(data: bytes | bytearray | memoryview) -> int:
    """The entries' byte count of the container header in ``data[:16]`` (0 for a container
    with no entries, as pruning leaves one whose code no listed GPU can use); FormatError
    when it is not a container header."""
    magic, version, size, fat = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError("no fat binary magic")
    if version != 1 or size != HEADER_SIZE:
        raise FormatError(f"unknown container version {version} / header size {size}")
    if fat % ALIGN:
        raise FormatError(f"container size {fat} is not a multiple of {ALIGN}")
    return fat


def header_bytes(fat_size: int) -> bytes:
    """A container header announcing ``fat_size`` bytes of entries."""
    return _HEADER.pack(MAGIC, 1, HEADER_SIZE, fat_size)


def fat_size_field(fat_size: int) -> bytes:
    """The 8 bytes at offset 8 of a container header."""
    return struct.pack("<Q", fat_size)


class EntryHeader:
    """The fields of one entry header that pruning needs."""

    __slots__ = ("kind", "header_size", "payload_size", "compressed_size", "arch", "flags",
                 "uncompressed_size")

    def __init__(self, kind: int, header_size: int, payload_size: int, compressed_size: int,
                 arch: int, flags: int, uncompressed_size: int) -> None:
        self.kind = kind
        self.header_size = header_size
        self.payload_size = payload_size
        self.compressed_size = compressed_size
        self.arch = arch
        self.flags = flags
        self.uncompressed_size = uncompressed_size

    @property
    def size(self) -> int:
        """Header plus payload: the distance to the next entry."""
        return self.header_size + self.payload_size

    @property
    def compressed(self) -> bool:
        return bool(self.flags & COMPRESSION_FLAGS)


def parse_entry_base(data: bytes | bytearray | memoryview) -> EntryHeader:
    """The fixed 64-byte part of an entry header; FormatError when its framing is not that
    of an entry (what a later byte means does not matter for walking the container)."""
    (kind, version, hsize, psize, csize, _ext, _minor, _major, arch, _noff, _nlen, flags,
     _reserved, usize) = _ENTRY.unpack_from(data, 0)
    if version != ENTRY_VERSION:
        raise FormatError(f"unknown entry version {version:#x}")
    if hsize < ENTRY_BASE or hsize > MAX_ENTRY_HEADER or hsize % ALIGN:
        raise FormatError(f"bad entry header size {hsize}")
    if psize % ALIGN:
        raise FormatError(f"entry payload size {psize} is not a multiple of {ALIGN}")
    return EntryHeader(kind, hsize, psize, csize, arch, flags, usize)


def entry_problem(entry: EntryHeader) -> str | None:
    """Why an entry cannot be judged for pruning (unknown kind, odd compression, unknown
    architecture variant), or None."""
    if entry.kind not in (EntryKind.PTX, EntryKind.CUBIN):
        return f"unknown entry kind {entry.kind}"
    if not 10 <= entry.arch <= 999:
        return f"unknown architecture {entry.arch}"
    if entry.flags & FLAG_ARCH_SPECIFIC and entry.flags & FLAG_FAMILY_SPECIFIC:
        return f"entry for sm_{entry.arch} is both arch- and family-specific"
    if entry.compressed:
        if bin(entry.flags & COMPRESSION_FLAGS).count("1") != 1:
            return f"entry for sm_{entry.arch} names two compressions"
        if not 0 < entry.compressed_size <= entry.payload_size or not entry.uncompressed_size:
            return (f"compressed entry for sm_{entry.arch} has sizes that do not add up "
                    f"({entry.compressed_size} of {entry.payload_size}, "
                    f"{entry.uncompressed_size} uncompressed)")
    return None


def entry_arch(entry: EntryHeader) -> Arch:
    """The architecture an entry's code is for."""
    if entry.flags & FLAG_ARCH_SPECIFIC:
        variant = Variant.SPECIFIC
    elif entry.flags & FLAG_FAMILY_SPECIFIC:
        variant = Variant.FAMILY
    else:
        variant = Variant.GENERIC
    return Arch.of_number(entry.arch, variant)


def entry_header_bytes(kind: int, payload_size: int, arch: int, *, flags: int = 0x11,
                       compressed_size: int = 0, uncompressed_size: int = 0,
                       extension: bytes = b"", version: int = ENTRY_VERSION) -> bytes:
    """An entry header (for building containers, e.g. in tests): the fields pruning reads,
    the rest zero."""
    hsize = ENTRY_BASE + len(extension)
    return _ENTRY.pack(kind, version, hsize, payload_size, compressed_size,
                       ENTRY_BASE if extension else 0, 0, 0, arch, 0, 0, flags, 0,
                       uncompressed_size) + extension
