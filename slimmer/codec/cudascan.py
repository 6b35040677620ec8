"""Finding the fat binaries of an ELF file while it streams past, holding no more of it than
entry headers and the section table.

Section headers come at the end of the file, so the scanner cannot wait for them: it looks
for container headers (magic at an 8-aligned offset, a known version, a first entry header
that parses) wherever they are, walks each container's entries by their sizes, skips their
payloads without keeping them, and keeps the section header table and the section name table
as they pass. At the end only containers that lie in ``.nv_fatbin``/``__nv_relfatbin`` count,
and they must tile those sections exactly: anything else (a container the scan did not see,
one that overruns, a chance magic number that swallowed a real container) makes the file's
``problem``, and a file with a problem is left as it is.
"""

from __future__ import annotations

from slimmer.codec.elf import (
    FATBIN_SECTIONS,
    WRAPPER_SECTION,
    ElfHeader,
    parse_elf_header,
    parse_section_table,
    section_name,
)
from slimmer.codec.fatbin import (
    ALIGN,
    ENTRY_BASE,
    HEADER_SIZE,
    MAGIC_BYTES,
    EntryHeader,
    FormatError,
    entry_arch,
    entry_problem,
    parse_entry_base,
    parse_header,
)
from slimmer.gpu.model import CudaFile, FatbinContainer, FatbinEntry, FatbinSection

#: How far before the section header table the section name table may start and still be
#: caught on the way (linkers put it right before the table).
NAME_WINDOW = 1 << 20
_START = HEADER_SIZE + ENTRY_BASE


class _Open:
    """A container being walked."""

    __slots__ = ("offset", "end", "entries", "problem", "zeros_to")

    def __init__(self, offset: int, end: int) -> None:
        self.offset = offset
        self.end = end
        self.entries: list[FatbinEntry] = []
        self.problem: str | None = None
        self.zeros_to = end     # only zero bytes follow the container up to here


class _Capture:
    """A file range kept as it streams past."""

    __slots__ = ("start", "end", "data")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.data = bytearray()

    @property
    def complete(self) -> bool:
        return len(self.data) == self.end - self.start

    def take(self, chunk: memoryview, pos: int) -> None:
        """Keep the part of ``chunk`` (file offset ``pos``) in the range."""
        lo, hi = max(self.start, pos), min(self.end, pos + len(chunk))
        if lo < hi:
            self.data += chunk[lo - pos:hi - pos]

    def get(self, start: int, end: int) -> bytes | None:
        if not (self.complete and self.start <= start <= end <= self.end):
            return None
        return bytes(self.data[start - self.start:end - self.start])


class FatbinScanner:
    """Feed an ELF file's bytes in order (``feed``), then ``finish`` for its fat binaries."""

    def __init__(self, elf: ElfHeader, size: int) -> None:
        self.elf = elf
        self.size = size
        self.pos = 0
        self._table = _Capture(elf.shoff, elf.shoff + elf.table_size)
        self._names = _Capture(max(0, elf.shoff - NAME_WINDOW), elf.shoff)
        self._late_names: _Capture | None = None
        self._skip = 0
        self._need = 0
        self._hdr = bytearray()
        self._start = 0              # file offset of what _hdr holds
        self._tail = b""             # up to 3 bytes before pos, for a magic across chunks
        self._open: _Open | None = None
        self._last: _Open | None = None    # the container closed last
        self._dirty: int | None = None     # first non-zero byte after it, once seen
        self.containers: list[_Open] = []

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)   # one copy at most
        view = memoryview(data)
        for cap in (self._table, self._names):
            if not cap.complete:
                cap.take(view, self.pos)
        if self._late_names is None and self._table.complete:
            self._plan_late_names()
        if self._late_names is not None and not self._late_names.complete:
            self._late_names.take(view, self.pos)
        self._process(data, self.pos)
        self.pos += len(data)

    def _process(self, data: bytes, base: int) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                if not self._skip:
                    self._entry_done(base + i)
            elif self._need:
                k = min(self._need, n - i)
                self._hdr += data[i:i + k]
                self._need -= k
                i += k
                if not self._need:
                    self._collected(base + i)
            else:
                i = self._search(data, i, base)

    def _search(self, data: bytes, i: int, base: int) -> int:
        """Look for a container magic from ``data[i]``; returns where to go on."""
        tail = b""
        if self._tail:                       # a magic that began in an earlier chunk
            tail, self._tail = self._tail, b""
            combo = tail + data[i:i + _START]
            first = base + i - len(tail)
            j = combo.find(MAGIC_BYTES)
            while 0 <= j < len(tail) and (first + j) % ALIGN:
                j = combo.find(MAGIC_BYTES, j + 1)
            if 0 <= j < len(tail):
                self._watch_zeros(combo, first, j)
                head = combo[j:j + _START]
                self._begin(first + j, head)
                return i + len(head) - (len(tail) - j)
            self._watch_zeros(tail, first, len(tail))
        j = data.find(MAGIC_BYTES, i)
        while j >= 0 and (base + j) % ALIGN:
            j = data.find(MAGIC_BYTES, j + 1)
        end = len(data) if j < 0 else j
        self._watch_zeros(data[i:end] if self._watching else b"", base + i, end - i)
        if j < 0:
            self._tail = (tail + data[max(i, len(data) - 3):])[-3:]
            return len(data)
        head = data[j:j + _START]
        self._begin(base + j, head)
        return j + len(head)

    @property
    def _watching(self) -> bool:
        return self._last is not None and self._dirty is None

    def _watch_zeros(self, data: bytes, first: int, end: int) -> None:
        """Note the first non-zero byte after the last container (zero padding between
        containers, as pruning leaves it, is allowed)."""
        if not self._watching:
            return
        assert self._last is not None
        lo = max(0, self._last.end - first)
        if lo < end:
            run = data[lo:end]
            nonzero = len(run) - len(run.lstrip(b"\0"))
            if nonzero < len(run):
                self._dirty = first + lo + nonzero

    def _begin(self, offset: int, head: bytes) -> None:
        self._start = offset
        self._hdr = bytearray(head)
        self._need = _START - len(head)
        if not self._need:
            self._collected(offset + _START)

    def _collected(self, end: int) -> None:
        """``_hdr`` is complete: a candidate container start, or the next entry header."""
        data, self._hdr = bytes(self._hdr), bytearray()
        if self._open is None:
            self._try_start(data)
            return
        try:
            self._add_entry(parse_entry_base(data), end - ENTRY_BASE)
        except FormatError as exc:
            self._fail(str(exc), end)

    def _try_start(self, data: bytes) -> None:
        offset = self._start
        try:
            fat = parse_header(data)
            entry = parse_entry_base(data[HEADER_SIZE:]) if fat else None
            if offset + HEADER_SIZE + fat > self.size or (entry and entry.size > fat):
                raise FormatError("container runs past the file")
        except FormatError:
            # Not a container: look again from the byte after the magic.
            self._process(data[1:], offset + 1)
            return
        if self._last is not None:
            self._last.zeros_to = offset if self._dirty is None else min(offset, self._dirty)
        self._open = _Open(offset, offset + HEADER_SIZE + fat)
        self.containers.append(self._open)
        if entry is None:                    # an empty container: what follows is not its
            self._entry_done(offset + HEADER_SIZE)
            self._process(data[HEADER_SIZE:], offset + HEADER_SIZE)
            return
        self._add_entry(entry, offset + HEADER_SIZE)

    def _add_entry(self, entry: EntryHeader, offset: int) -> None:
        box = self._open
        assert box is not None
        end = offset + entry.size
        if end > box.end:
            self._fail(f"entry at {offset:#x} runs past its container", offset + ENTRY_BASE)
            return
        problem = entry_problem(entry)
        if problem is not None and box.problem is None:
            box.problem = problem
        box.entries.append(FatbinEntry(offset, entry.size, entry.kind, entry_arch(entry),
                                       entry.compressed))
        self._advance(end - (offset + ENTRY_BASE), end)

    def _advance(self, skip: int, end: int) -> None:
        if skip:
            self._skip = skip
        else:
            self._entry_done(end)

    def _entry_done(self, at: int) -> None:
        box = self._open
        if box is None:
            return
        left = box.end - at
        if left == 0:
            self._open = None
            self._last, self._dirty = box, None
        elif left < ENTRY_BASE:
            self._fail(f"{left} stray bytes at the end of the container at {box.offset:#x}", at)
        else:
            self._need = ENTRY_BASE
            self._start = at

    def _fail(self, why: str, at: int) -> None:
        """Give up on the open container; skip to its end."""
        box = self._open
        assert box is not None
        if box.problem is None:
            box.problem = f"container at {box.offset:#x}: {why}"
        self._hdr = bytearray()
        self._need = 0
        self._advance(box.end - at, box.end)

    def _plan_late_names(self) -> None:
        table = self._table.get(self._table.start, self._table.end)
        assert table is not None
        sec = parse_section_table(table, self.elf.shnum)[self.elf.shstrndx]
        if sec.offset >= self._table.end and sec.offset + sec.size <= self.size:
            self._late_names = _Capture(sec.offset, sec.offset + sec.size)
        else:
            self._late_names = _Capture(0, 0)

    # -- the result ------------------------------------------------------------------------
    def finish(self) -> CudaFile | None:
        """The file's fat binaries; None when it has no fat binary sections (or is not an
        ELF file after all)."""
        table = self._table.get(self._table.start, self._table.end)
        if table is None or self.pos != self.size:
            return None
        if self._last is not None:
            self._last.zeros_to = self.size if self._dirty is None else self._dirty
        sections = parse_section_table(table, self.elf.shnum)
        names_sec = sections[self.elf.shstrndx]
        names = None
        for cap in (self._names, self._late_names):
            if cap is not None and names is None:
                names = cap.get(names_sec.offset, names_sec.offset + names_sec.size)
        if names is None:
            if any(c.entries for c in self.containers):
                return CudaFile((), (), "the section name table was not where it was expected")
            return None
        found = []
        for sec in sections:
            name = section_name(names, sec)
            if name in FATBIN_SECTIONS + (WRAPPER_SECTION,) and sec.has_data and sec.size:
                found.append(FatbinSection(name, sec.offset, sec.size))
        fat = [s for s in found if s.name in FATBIN_SECTIONS]
        if not fat:
            return None
        return self._result(tuple(found), fat)

    def _result(self, found: tuple[FatbinSection, ...], fat: list[FatbinSection]) -> CudaFile:
        kept: list[FatbinContainer] = []
        problem = None
        for sec in fat:
            end = sec.offset + sec.size
            inside = [c for c in self.containers if sec.offset <= c.offset < end]
            at, zeros_to = sec.offset, sec.offset
            for c in inside:
                if not at <= c.offset <= max(at, zeros_to) or c.end > end:
                    problem = problem or (f"{sec.name} at {sec.offset:#x}: not one run of "
                                          f"containers (gap or overlap at {at:#x})")
                problem = problem or c.problem
                kept.append(FatbinContainer(c.offset, c.end - c.offset, tuple(c.entries)))
                at, zeros_to = c.end, c.zeros_to
            if (end - at >= ALIGN and zeros_to < end) or not inside:
                problem = problem or (f"{sec.name} at {sec.offset:#x}: {end - at} bytes "
                                      "that are not fat binary containers")
        return CudaFile(found, tuple(kept), problem)


def scan_fatbins(head: bytes, size: int) -> FatbinScanner | None:
    """A scanner for a file of ``size`` bytes starting with ``head`` (at least the 64-byte ELF
    header), or None when it is not a 64-bit little-endian ELF file."""
    elf = parse_elf_header(head, size)
    return FatbinScanner(elf, size) if elf is not None else None
