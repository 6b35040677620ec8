"""The project's own small ELF reader: the header, the program headers and, from the data
stream of the file, PT_INTERP and the dynamic section with its strings (DT_NEEDED, DT_RPATH,
DT_RUNPATH, DT_SONAME, DT_FLAGS_1).

The dynamic section usually sits far from the head of a big shared library and its string
table may lie before it (most linkers) or after it. ``ElfCapture`` is fed the file's data once,
in order, and retains only what it may need: the first ``PREFIX_CAP`` bytes until the dynamic
section is parsed (the string table before it), then small windows at the strings' offsets
when the table comes later. Nothing here reads a layer; the scanner feeds it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from slimmer.fs.closure.facts import ElfFacts

MAGIC = b"\x7fELF"
HEAD_BYTES = 4096                 # read first; enough for the header and program headers
MAX_HEAD = 64 << 10               # program headers must end within this many bytes
PREFIX_CAP = 16 << 20             # bytes retained before the dynamic section
MAX_DYNAMIC = 64 << 10
MAX_STRING = 4096
_SMALL = 64 << 10                 # retained slices below this size are copied

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ = 0, 1, 5, 10
DT_SONAME, DT_RPATH, DT_RUNPATH, DT_FLAGS_1 = 14, 15, 29, 0x6FFFFFFB
DF_1_NODEFLIB = 0x800


class ElfError(ValueError):
    """A malformed or truncated ELF file (the message is one line)."""


class ElfPartial(ElfError):
    """A well-formed ELF file whose facts lie where the streaming read keeps no bytes."""


@dataclass(frozen=True)
class ElfLayout:
    """What the head of an ELF file says: class, byte order, machine and where the segments
    that matter lie in the file."""

    elf_class: int
    endian: str                                  # "<" or ">"
    machine: int
    size: int                                    # file size
    interp: tuple[int, int] | None               # (offset, size)
    dynamic: tuple[int, int] | None
    loads: tuple[tuple[int, int, int], ...]      # (offset, vaddr, filesz)

    def offset_of(self, vaddr: int) -> int | None:
        """File offset of virtual address ``vaddr``, or None if no PT_LOAD maps it."""
        for off, va, filesz in self.loads:
            if va <= vaddr < va + filesz:
                return vaddr - va + off
        return None


def phdr_end(head: bytes) -> int:
    """How many head bytes parsing needs (the end of the program header table)."""
    if len(head) < 52 or head[4] not in (1, 2) or head[5] not in (1, 2):
        return len(head)
    e = "<" if head[5] == 1 else ">"
    if head[4] == 2:
        if len(head) < 64:
            return 64
        phoff, = struct.unpack_from(e + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(e + "I", head, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 42)
    return phoff + phentsize * phnum


def parse_head(head: bytes, size: int) -> ElfLayout:
    """The layout from the file's leading bytes; ElfError when they are not a sane ELF."""
    if len(head) < 52 or not head.startswith(MAGIC):
        raise ElfError("too short for an ELF header")
    cls, data = head[4], head[5]
    if cls not in (1, 2):
        raise ElfError(f"bad ELF class {cls}")
    if data not in (1, 2):
        raise ElfError(f"bad ELF byte order {data}")
    e = "<" if data == 1 else ">"
    if cls == 2:
        if len(head) < 64:
            raise ElfError("too short for an ELF header")
        machine, = struct.unpack_from(e + "H", head, 18)
        phoff, = struct.unpack_from(e + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
        want, fmt = 56, e + "IIQQQQQQ"
    else:
        machine, = struct.unpack_from(e + "H", head, 18)
        phoff, = struct.unpack_from(e + "I", head, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 42)
        want, fmt = 32, e + "IIIIIIII"
    if phnum == 0:
        return ElfLayout(cls * 32, e, machine, size, None, None, ())
    if phentsize < want or phnum == 0xFFFF:
        raise ElfError(f"unsupported program header table (entry size {phentsize}, "
                       f"{phnum} entries)")
    end = phoff + phentsize * phnum
    if end > len(head) or end > size:
        raise ElfError(f"program headers end at byte {end}, beyond the "
                       f"{min(len(head), size)} bytes available")
    interp = dynamic = None
    loads = []
    for i in range(phnum):
        fields = struct.unpack_from(fmt, head, phoff + i * phentsize)
        if cls == 2:
            ptype, _, off, vaddr, _, filesz, _, _ = fields
        else:
            ptype, off, vaddr, _, filesz, _, _, _ = fields
        if ptype == PT_LOAD:
            loads.append((off, vaddr, filesz))
        elif ptype == PT_INTERP:
            interp = (off, filesz)
        elif ptype == PT_DYNAMIC:
            dynamic = (off, filesz)
    for name, seg in (("PT_INTERP", interp), ("PT_DYNAMIC", dynamic)):
        if seg is not None and seg[0] + seg[1] > size:
            raise ElfError(f"{name} at offset {seg[0]} (+{seg[1]}) is beyond the end of the "
                           f"file ({size} bytes): truncated")
    if dynamic is not None and dynamic[1] > MAX_DYNAMIC:
        raise ElfError(f"dynamic section of {dynamic[1]} bytes is implausibly large")
    return ElfLayout(cls * 32, e, machine, size, interp, dynamic, tuple(loads))


class _Pieces:
    """Retained slices of the data stream, by file offset."""

    def __init__(self) -> None:
        self.items: list[tuple[int, bytes | memoryview]] = []

    def add(self, offset: int, data: memoryview) -> None:
        self.items.append((offset, bytes(data) if len(data) < _SMALL else data))

    def read(self, offset: int, n: int) -> bytes:
        """Retained bytes from ``offset``, at most ``n``, stopping at the first gap."""
        out = bytearray()
        want = offset
        for start, data in sorted(self.items, key=lambda p: p[0]):
            end = start + len(data)
            if end <= want or start > want:
                continue
            out += data[want - start:want - start + (n - len(out))]
            want = start + len(data)
            if len(out) >= n:
                break
        return bytes(out)


class ElfCapture:
    """Feed an ELF file's data in order (``feed``), then ``result`` gives its ElfFacts."""

    def __init__(self, layout: ElfLayout) -> None:
        self.layout = layout
        self.pos = 0
        self.pieces = _Pieces()
        self.error: ElfError | None = None
        self.interp: str | None = None
        self.strtab: int | None = None
        self.tags: list[tuple[int, int]] = []
        self.strings: dict[int, str] = {}
        self.want: list[tuple[int, int]] = []
        self.prefix_end = 0
        self.parsed = layout.dynamic is None
        if layout.dynamic is not None:
            off, n = layout.dynamic
            self.prefix_end = min(off, PREFIX_CAP)
            self.want = [(0, self.prefix_end), (off, off + n)]
        if layout.interp is not None:
            self.want.append((layout.interp[0], layout.interp[0] + layout.interp[1]))
        self.wait_until = max((hi for _, hi in self.want), default=0)
        self.done = not self.want

    def feed(self, data: memoryview | bytes) -> None:
        """The next bytes of the file's data (any chunking gives the same result)."""
        view = memoryview(data)
        while len(view):
            if self.done:
                self.pos += len(view)
                return
            # stop at wait_until: what is wanted beyond it is only known after _advance
            take = min(len(view), max(self.wait_until - self.pos, 1))
            start, end = self.pos, self.pos + take
            for lo, hi in self.want:
                if lo < end and hi > start:
                    self.pieces.add(max(lo, start), view[max(lo, start) - start:
                                                         min(hi, end) - start])
            self.pos = end
            view = view[take:]
            if self.pos >= self.wait_until:
                self._advance()

    def _advance(self) -> None:
        """Everything wanted so far is in: read PT_INTERP, parse the dynamic section and the
        strings already passed, then wait for strings further on (if any)."""
        lay = self.layout
        if not self.parsed:
            self.parsed = True
            if lay.interp is not None:
                raw = self.pieces.read(lay.interp[0], lay.interp[1])
                self.interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape") or None
            try:
                self._parse_dynamic()
                self._early_strings()
            except ElfError as exc:
                self.error = exc
            self.pieces = _Pieces()
            if self.error is None and self.strtab is not None:
                ahead = sorted({self.strtab + v for t, v in self.tags if t in _STRING_TAGS}
                               - set(self.strings))
                self.want = [(lo, min(lo + MAX_STRING, lay.size)) for lo in ahead]
                self.wait_until = max((hi for _, hi in self.want), default=0)
                if self.pos < self.wait_until:
                    return
        elif lay.interp is not None and self.interp is None:
            raw = self.pieces.read(lay.interp[0], lay.interp[1])
            self.interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape") or None
        self.done = True

    def _parse_dynamic(self) -> None:
        lay = self.layout
        if lay.dynamic is None:
            return
        off, n = lay.dynamic
        raw = self.pieces.read(off, n)
        if len(raw) < n:
            raise ElfError("dynamic section is truncated")
        fmt, step = (lay.endian + "qQ", 16) if lay.elf_class == 64 else (lay.endian + "iI", 8)
        strtab = strsz = None
        for i in range(0, n - step + 1, step):
            tag, val = struct.unpack_from(fmt, raw, i)
            if tag == DT_NULL:
                break
            if tag == DT_STRTAB:
                strtab = val
            elif tag == DT_STRSZ:
                strsz = val
            elif tag in _STRING_TAGS or tag == DT_FLAGS_1:
                self.tags.append((tag, val))
        if not any(t in _STRING_TAGS for t, _ in self.tags):
            return
        if strtab is None or strsz is None:
            raise ElfError("dynamic section has strings but no DT_STRTAB/DT_STRSZ")
        file_off = lay.offset_of(strtab)
        if file_off is None or file_off + strsz > lay.size:
            raise ElfError(f"DT_STRTAB address {strtab:#x} is outside the file's segments")
        for t, v in self.tags:
            if t in _STRING_TAGS and v >= strsz:
                raise ElfError(f"dynamic string offset {v} beyond DT_STRSZ {strsz}")
        self.strtab = file_off

    def _early_strings(self) -> None:
        """Strings of the table that lie before the current position (kept in the prefix)."""
        if self.strtab is None:
            return
        for tag, val in self.tags:
            lo = self.strtab + val
            if tag not in _STRING_TAGS or lo >= self.pos:
                continue
            if lo >= self.prefix_end:
                raise ElfPartial(f"a dynamic string (table at offset {self.strtab}, string at "
                                 f"{lo}) lies before the dynamic section, beyond the first "
                                 f"{PREFIX_CAP >> 20} MiB kept while reading")
            self.strings[lo] = self._string(lo)

    def _string(self, offset: int) -> str:
        raw = self.pieces.read(offset, MAX_STRING)
        end = raw.find(b"\0")
        if end < 0:
            raise ElfError(f"dynamic string at offset {offset} is not terminated")
        return raw[:end].decode("utf-8", "surrogateescape")

    def result(self) -> ElfFacts:
        """The facts, after the whole file was fed (incomplete ones carry ``error``)."""
        lay = self.layout
        if not self.done:
            self._advance()
        try:
            if not self.done:
                raise ElfError("the file ends before its dynamic strings")
            if self.error is not None:
                raise self.error
            needed: list[str] = []
            rpath: list[str] = []
            runpath: list[str] = []
            soname = None
            nodeflib = False
            for tag, val in self.tags:
                if tag == DT_FLAGS_1:
                    nodeflib = bool(val & DF_1_NODEFLIB)
                    continue
                assert self.strtab is not None
                lo = self.strtab + val
                text = self.strings[lo] if lo in self.strings else self._string(lo)
                if tag == DT_NEEDED:
                    needed.append(text)
                elif tag == DT_SONAME:
                    soname = text
                elif tag == DT_RPATH:
                    rpath.extend(p for p in text.split(":") if p)
                else:
                    runpath.extend(p for p in text.split(":") if p)
        except ElfError as exc:
            return ElfFacts(lay.elf_class, lay.machine, self.interp, error=str(exc),
                            partial=isinstance(exc, ElfPartial))
        return ElfFacts(lay.elf_class, lay.machine, self.interp, tuple(needed), tuple(rpath),
                        tuple(runpath), soname, nodeflib)


_STRING_TAGS = frozenset({DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH})


def elf_facts(data: bytes) -> ElfFacts:
    """The facts of a whole ELF file held in memory (tests and small files)."""
    try:
        layout = parse_head(data[:max(HEAD_BYTES, phdr_end(data[:MAX_HEAD]))], len(data))
    except ElfError as exc:
        return ElfFacts(64 if len(data) > 4 and data[4] == 2 else 32,
                        0, error=str(exc))
    capture = ElfCapture(layout)
    capture.feed(data)
    return capture.result()
