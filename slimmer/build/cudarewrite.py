"""Writing a file with its fat binaries pruned, while it streams from the input layer.

Each edited container keeps its place in the file: its header announces the entries it
keeps, those entries follow it in their original order, and the bytes the dropped entries
took become zeros at the container's end. Every other byte of the file, every ELF offset and
address, stays as it was, so the file keeps its size (and its tar header). Nothing is held but
a container's 16-byte header; the rest passes through as it comes.
"""

from __future__ import annotations

from slimmer.codec.fatbin import HEADER_SIZE, header_bytes
from slimmer.codec.tarread import TarReader, Write
from slimmer.errors import LayerError
from slimmer.plan.model import Rewrite

_PASS, _DROP, _HEADER, _ZEROS = range(4)
_ZERO_CHUNK = bytes(1 << 20)


def _segments(rewrite: Rewrite) -> list[tuple[int, int, int, bytes]]:
    """(start, end, what, extra) over the input file: pass, drop, a container header to check
    (extra: the expected bytes) and replace, or zeros to add (extra: their count as text)."""
    out: list[tuple[int, int, int, bytes]] = []
    cursor = 0
    for edit in sorted(rewrite.edits, key=lambda e: e.offset):
        if edit.offset < cursor:
            raise ValueError("overlapping container edits")
        out.append((cursor, edit.offset, _PASS, b""))
        out.append((edit.offset, edit.offset + HEADER_SIZE, _HEADER,
                    header_bytes(edit.size - HEADER_SIZE)))
        at = edit.offset + HEADER_SIZE
        for start, size in edit.keep:
            out.append((at, start, _DROP, b""))
            out.append((start, start + size, _PASS, b""))
            at = start + size
        end = edit.offset + edit.size
        out.append((at, end, _DROP, b""))
        out.append((end, end, _ZEROS, str(edit.size - edit.kept_size).encode()))
        cursor = end
    out.append((cursor, rewrite.size, _PASS, b""))
    return [s for s in out if s[0] < s[1] or s[2] == _ZEROS]


class ContentRewriter:
    """``feed`` the original bytes in order; the rewritten bytes go to ``write``."""

    def __init__(self, rewrite: Rewrite, write: Write, what: str) -> None:
        self._rewrite = rewrite
        self._segments = _segments(rewrite)
        self._write = write
        self._what = what
        self._k = 0
        self._pos = 0
        self._held = bytearray()

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        i, n = 0, len(view)
        while i < n or (self._k < len(self._segments) and
                        self._segments[self._k][2] == _ZEROS):
            if self._k >= len(self._segments):
                raise LayerError(f"{self._what}: file is longer than when it was scanned")
            start, end, what, extra = self._segments[self._k]
            if what == _ZEROS:
                self._zeros(int(extra))
                self._k += 1
                continue
            k = min(end - self._pos, n - i)
            if what == _PASS:
                self._write(view[i:i + k])
            elif what == _HEADER:
                self._held += view[i:i + k]
            i += k
            self._pos += k
            if self._pos == end:
                if what == _HEADER:
                    self._header(start, extra)
                self._k += 1

    def _header(self, start: int, expected: bytes) -> None:
        held, self._held = bytes(self._held), bytearray()
        if held != expected:
            raise LayerError(f"{self._what}: the fat binary at {start:#x} changed since the "
                             "scan")
        edit = next(e for e in self._rewrite.edits if e.offset == start)
        self._write(header_bytes(edit.kept_size - HEADER_SIZE))

    def _zeros(self, count: int) -> None:
        while count:
            k = min(count, len(_ZERO_CHUNK))
            self._write(memoryview(_ZERO_CHUNK)[:k])
            count -= k

    def close(self) -> None:
        """Check that the whole file went through."""
        if self._pos != self._rewrite.size or self._k != len(self._segments):
            raise LayerError(f"{self._what}: file is shorter than when it was scanned")


def copy_data(reader: TarReader, rewrite: Rewrite | None, write: Write, what: str) -> None:
    """Copy the current entry's data (and padding) from ``reader`` to ``write``, rewritten by
    ``rewrite`` when there is one."""
    if rewrite is None:
        reader.copy_data(write)
        return
    rewriter = ContentRewriter(rewrite, write, what)
    reader.copy_data(rewriter.feed, with_padding=False)
    rewriter.close()
    reader.copy_data(write)   # the block padding after the data
