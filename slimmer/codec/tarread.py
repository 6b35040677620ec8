"""Streaming tar reading that keeps every entry's original header bytes.

``TarReader`` walks a decompressed layer stream entry by entry. Each ``Entry`` keeps its original
header blocks (PAX / GNU extension blocks included) so a kept entry is copied byte for byte; only
entries that must change (renamed, relinked, retyped) get a new header (``codec.tarwrite``).
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Callable, Iterator

from slimmer.codec.tarheader import (
    BLOCK,
    Entry,
    _merge_records,
    _str,
    header_checksum,
    make_entry,
    normalize_path,
    parse_number,
    parse_pax,
    plain_fields,
)
from slimmer.errors import LayerError

__all__ = ["BLOCK", "Entry", "TarReader", "Write", "header_checksum", "normalize_path",
           "parse_number", "parse_pax"]

#: The most bytes after the end-of-archive marker that ``TarReader.tail`` keeps.
TAIL_LIMIT = 1 << 20
CHUNK = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)


Write = Callable[[bytes | memoryview], object]


class TarReader:
    """Iterate the members of a tar stream without buffering any member's data.

    After an entry is yielded the caller may call ``head``, ``copy_data`` or ``read_data``;
    whatever is not consumed is skipped when iteration continues. ``end_offset`` is the number
    of bytes up to the end-of-archive marker; the rest of the stream is drained, and kept in
    ``tail`` when it is at most ``TAIL_LIMIT`` bytes (else ``tail`` is None).

    With ``hashing`` every byte of the stream is hashed as it is consumed (``diff_id()`` at
    the end); ``hash_state()`` is a copy of the hash of everything consumed so far, which is
    what a caller that copied every byte so far has written.
    """

    def __init__(self, stream: BinaryIO, what: str, hashing: bool = False) -> None:
        self._stream = stream
        self._what = what
        self._buf = b""
        self._pos = 0
        self._hash = hashlib.sha256() if hashing else None
        self._hpos = 0              # bytes of self._buf before this are hashed
        self._hashed = 0            # stream offset the hash has reached
        self.tail: bytes | None = b""
        self.synthesized_padding = False   # the stream lacked the last member's padding
        self._consumed = 0          # stream offset of self._buf[0]
        self._data_left = 0         # unread data+padding bytes of the current entry
        self._data_size = 0
        self._pad = 0               # padding bytes at the end of the current entry's data
        self._global: list[tuple[str, bytes]] = []
        self._watch: Write | None = None   # other readers of the current entry's data
        self._watch_left = 0
        self._tee: Write | None = None     # see tee()
        self._tee_pos = 0           # stream offset up to which the tee has had the bytes
        self._tee_limit: int | None = None   # the tee gets nothing from here on, for now
        self._tee_header: bytes | None = None  # the header of the entry at _tee_limit
        self.end_offset = 0

    @property
    def what(self) -> str:
        """What the stream is, for error messages (``reading layer sha256:...``)."""
        return self._what

    # -- buffer management -------------------------------------------------------------
    def _fill(self, n: int) -> bool:
        """Ensure ``n`` bytes are buffered at the read position; False at EOF."""
        while len(self._buf) - self._pos < n:
            chunk = self._stream.read(max(CHUNK, n))
            if not chunk:
                return False
            self._release(self._pos)
            self._consumed += self._pos
            self._buf = self._buf[self._pos:] + chunk
            self._pos = self._hpos = 0
        return True

    def _hash_to(self, pos: int) -> None:
        """Hash the buffer's consumed bytes up to ``pos`` that are not hashed yet."""
        if self._hash is not None and pos > self._hpos:
            self._hash.update(memoryview(self._buf)[self._hpos:pos])
            self._hashed += pos - self._hpos
            self._hpos = pos

    def _release(self, pos: int) -> None:
        """The buffer's bytes before ``pos`` are about to be dropped: hash them, and give the
        tee what is due of them."""
        self._hash_to(pos)
        if self._tee is not None:
            self._pass(memoryview(self._buf)[:pos], self._consumed)

    def _drop_buffer(self) -> None:
        """Everything buffered is consumed: release it and start an empty buffer."""
        self._release(len(self._buf))
        self._consumed += len(self._buf)
        self._buf, self._pos, self._hpos = b"", 0, 0

    def _tap(self, chunk: bytes | memoryview) -> None:
        """A chunk consumed without passing through the buffer: hashed, given to the tee,
        counted."""
        if self._hash is not None:
            self._hash.update(chunk)
            self._hashed += len(chunk)
        if self._tee is not None:
            self._pass(chunk, self._consumed)
        self._consumed += len(chunk)

    def hash_at(self, offset: int) -> "hashlib._Hash | None":
        """A copy of the hash of the stream up to ``offset`` (the start of the current
        entry), or None when the hash has already moved past it (its header crossed a buffer
        refill). Needs ``hashing``. The hash itself moves a buffer at a time: hashing at
        every entry made the GIL change hands tens of thousands of times per layer."""
        assert self._hash is not None
        start = offset - self._consumed        # where the entry starts in the buffer
        if self._hashed > offset or start < self._hpos:
            return None
        state = self._hash.copy()
        if start > self._hpos:
            state.update(memoryview(self._buf)[self._hpos:start])
        return state

    def hash_state(self) -> "hashlib._Hash":
        """A copy of the hash of every byte consumed so far (needs ``hashing``)."""
        assert self._hash is not None
        self._hash_to(self._pos)
        return self._hash.copy()

    @property
    def hashing(self) -> bool:
        return self._hash is not None

    def stop_hashing(self) -> None:
        """Hash no more (a caller that hashes what it writes itself and needs no input hash)."""
        self._hash = None

    def diff_id(self) -> str:
        """``sha256:...`` of the whole stream, once it is drained (needs ``hashing``)."""
        assert self._hash is not None
        self._hash_to(len(self._buf))
        return "sha256:" + self._hash.hexdigest()

    # -- the tee ---------------------------------------------------------------------------
    def tee(self, write: Write) -> None:
        """Pass every byte from the read position on to ``write``, in big pieces as the
        reader moves past them, until ``untee``: the rest of the current entry (the caller
        has written its header) and each later entry whole once the caller moves on from it.
        For a caller that would copy entry after entry unchanged: one call per buffer instead
        of two per entry. The end-of-archive marker and what follows it are not passed."""
        self._tee = write
        self._tee_pos = self._offset
        self._tee_limit = self._tee_header = None

    def untee(self) -> None:
        """Pass what is due up to the current entry's start (at the end: the end-of-archive
        marker), and stop: the current entry is the caller's to write or to drop."""
        if self._tee is None:
            return
        assert self._tee_limit is not None
        self._pass(self._buf, self._consumed)
        self._tee = None
        self._tee_limit = self._tee_header = None

    @property
    def teeing(self) -> bool:
        return self._tee is not None

    def _pass(self, data: bytes | memoryview, start: int) -> None:
        """Give the tee what is due of ``data`` (the stream's bytes from offset ``start``)."""
        end = start + len(data)
        if self._tee_limit is not None and self._tee_limit < end:
            end = self._tee_limit
        if end <= self._tee_pos:
            return
        assert self._tee is not None and self._tee_pos >= start, "tee lost bytes"
        self._tee(data if self._tee_pos == start and end == start + len(data)
                  else memoryview(data)[self._tee_pos - start:end - start])
        self._tee_pos = end

    def _tee_accept(self) -> None:
        """The caller moved on from the entry at ``_tee_limit``: it stays, header and all.
        A one-block header still in the buffer goes on with the rest; one that a refill has
        dropped, or one with extension records (whose padding ``Entry.header`` has as zeros,
        as every other writer of it does), is written from the entry."""
        assert self._tee is not None and self._tee_limit is not None
        header = self._tee_header
        if header is not None and (len(header) != BLOCK or self._tee_limit < self._consumed):
            self._pass(self._buf, self._consumed)
            self._tee(header)
            self._tee_pos = self._tee_limit + len(header)
        self._tee_limit = self._tee_header = None

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            raise LayerError(f"{self._what}: tar stream is truncated")
        data = self._buf[self._pos:self._pos + n]
        self._pos += n
        return data

    @property
    def _offset(self) -> int:
        return self._consumed + self._pos

    def _skip(self, n: int) -> None:
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return
        n -= avail
        self._drop_buffer()
        while n > 0:
            chunk = self._stream.read(CHUNK)
            if not chunk:
                if n <= self._pad:  # only the last member's padding is missing (umoci insert)
                    self.synthesized_padding = True
                    return
                raise LayerError(f"{self._what}: tar stream is truncated")
            if len(chunk) > n:
                self._buf, self._pos, self._hpos = chunk, n, 0
                return
            self._tap(chunk)
            n -= len(chunk)

    # -- data access for the current entry ---------------------------------------------
    def head(self, n: int) -> bytes:
        """Up to ``n`` leading data bytes of the current entry, without consuming them."""
        if self._data_left != self._padded(self._data_size):
            raise RuntimeError("head() after data was consumed")
        n = min(n, self._data_size)
        if not self._fill(n):
            raise LayerError(f"{self._what}: tar stream is truncated")
        return self._buf[self._pos:self._pos + n]

    @staticmethod
    def _padded(size: int) -> int:
        return (size + BLOCK - 1) & ~(BLOCK - 1)

    def watch(self, fn: Write) -> None:
        """Also pass the current entry's data (not its padding), in order, to ``fn``, however
        it is consumed: copied by another caller or skipped (then read instead). Before any of
        it is consumed; ends with the entry. Several watchers of one entry see it in the order
        they were added."""
        if self._data_left != self._padded(self._data_size):
            raise RuntimeError("watch() after data was consumed")
        first = self._watch
        if first is None:
            self._watch = fn
        else:
            def both(chunk: bytes | memoryview) -> object:
                first(chunk)
                return fn(chunk)
            self._watch = both
        self._watch_left = self._data_size

    def _watched(self, chunk: bytes | memoryview) -> None:
        n = min(len(chunk), self._watch_left)
        if n and self._watch is not None:
            self._watch(chunk if n == len(chunk) else memoryview(chunk)[:n])
            self._watch_left -= n

    def copy_data(self, write: Write, with_padding: bool = True) -> None:
        """Pass the rest of the current entry's data (and its block padding) to ``write``."""
        if self._watch is not None and self._watch_left:
            inner = write

            def write(chunk: bytes | memoryview) -> object:
                self._watched(chunk)
                return inner(chunk)
        left = self._data_left
        if not with_padding:
            left -= self._padded(self._data_size) - self._data_size
            if left < 0:
                raise RuntimeError("copy_data(with_padding=False) after partial read")
        self._data_left -= left
        avail = len(self._buf) - self._pos
        if left <= avail:
            if left:
                write(memoryview(self._buf)[self._pos:self._pos + left])
                self._pos += left
            return
        if avail:
            write(memoryview(self._buf)[self._pos:])
            left -= avail
        self._drop_buffer()
        while left > 0:
            chunk = self._stream.read(CHUNK)
            if not chunk:
                if with_padding and left <= self._pad:  # last member's padding missing: add it
                    self.synthesized_padding = True
                    write(bytes(left))
                    return
                raise LayerError(f"{self._what}: tar stream is truncated")
            if len(chunk) > left:
                write(memoryview(chunk)[:left])
                self._buf, self._pos, self._hpos = chunk, left, 0
                return
            self._tap(chunk)
            write(chunk)
            left -= len(chunk)

    def read_data(self) -> bytes:
        """The whole data of the current entry (only for small extension records)."""
        parts: list[bytes] = []
        self.copy_data(lambda b: parts.append(bytes(b)), with_padding=False)
        self._skip_rest()
        return b"".join(parts)

    def _skip_rest(self) -> None:
        if self._watch is not None:
            if self._watch_left and self._data_left:
                self.copy_data(lambda _: None, with_padding=False)
            self._watch = None
        if self._data_left:
            self._skip(self._data_left)
            self._data_left = 0

    # -- iteration ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Entry]:
        while True:
            if self._tee_limit is not None:
                self._tee_accept()
            self._skip_rest()
            start = self._offset
            if not self._fill(BLOCK):
                # EOF without an end-of-archive marker: accepted when on a member boundary.
                if len(self._buf) - self._pos:
                    raise LayerError(f"{self._what}: tar stream is truncated")
                self.end_offset = start
                if self._tee is not None:
                    self._tee_limit = start
                return
            if self._tee is not None:
                self._tee_limit = start     # the entry (or marker) here is not due yet
            if self._buf[self._pos:self._pos + BLOCK] == _ZERO_BLOCK:
                self.end_offset = start
                self._drain()
                return
            entry = self._plain_entry(start) or self._entry(start)
            if self._tee is not None:
                self._tee_header = entry.header
            self._data_size = entry.size
            self._data_left = self._padded(entry.size)
            self._pad = self._data_left - entry.size
            yield entry

    def _header_blocks(self) -> tuple[bytes, list[bytes], list[tuple[str, bytes]], str | None,
                                      str | None]:
        """Read one member's header blocks: extension headers (PAX, GNU long names), the
        member block and old-GNU sparse blocks. Returns (member block, all header blocks,
        local PAX records, GNU long name, GNU long link)."""
        what = self._what
        header_parts: list[bytes] = []
        local: list[tuple[str, bytes]] = []
        long_name = long_link = None
        while True:
            block = self._take(BLOCK)
            if block == _ZERO_BLOCK:
                raise LayerError(f"{what}: end of archive inside an extended header")
            chk = parse_number(block[148:156], what)
            if chk != header_checksum(block):
                raise LayerError(f"{what}: bad tar header checksum at offset "
                                 f"{self._offset - BLOCK}")
            tf = block[156:157]
            if tf not in (b"x", b"g", b"L", b"K"):
                break
            size = parse_number(block[124:136], what)
            if size > (64 << 20):
                raise LayerError(f"{what}: extended header of {size} bytes is too large")
            self._data_size = size
            self._data_left = self._padded(size)
            ext = self.read_data()
            header_parts.append(block)
            header_parts.append(ext + bytes(self._padded(size) - size))
            if tf == b"x":
                local.extend(parse_pax(ext, what))
            elif tf == b"g":
                self._global = _merge_records(self._global, parse_pax(ext, what))
            elif tf == b"L":
                long_name = ext.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            else:
                long_link = ext.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        header_parts.append(block)
        if tf == b"S" and block[482]:
            while True:  # old GNU sparse extension blocks belong to the header
                ext_block = self._take(BLOCK)
                header_parts.append(ext_block)
                if not ext_block[504]:
                    break
        return block, header_parts, local, long_name, long_link

    def _entry(self, start: int) -> Entry:
        """The next member as an Entry (its data not read yet)."""
        what = self._what
        block, header_parts, local, long_name, long_link = self._header_blocks()
        tf = block[156:157]
        pax = _merge_records(self._global, local) if (self._global or local) else None
        name = None
        linkname = None
        size = parse_number(block[124:136], what)
        uid = gid = None
        if pax:
            for key, value in pax:
                if key == "path" or key == "GNU.sparse.name":
                    name = value.decode("utf-8", "surrogateescape")
                elif key == "linkpath":
                    linkname = value.decode("utf-8", "surrogateescape")
                elif key == "size":
                    try:
                        size = int(value)
                    except ValueError:
                        raise LayerError(f"{what}: bad PAX size record") from None
                elif key == "uid" and value.isdigit():
                    uid = int(value)
                elif key == "gid" and value.isdigit():
                    gid = int(value)
        if name is None:
            name = long_name
        if name is None:
            name = _str(block[0:100])
            if block[257:263] == b"ustar\0":
                prefix = _str(block[345:500])
                if prefix:
                    name = prefix + "/" + name
        if linkname is None:
            linkname = long_link if long_link is not None else _str(block[157:257])
        return self._make_entry(
            b"".join(header_parts), name, linkname, tf, size, parse_number(block[100:108], what),
            parse_number(block[108:116], what) if uid is None else uid,
            parse_number(block[116:124], what) if gid is None else gid, pax, start)

    def _plain_entry(self, start: int) -> Entry | None:
        """The next member when it is a single plain header block (``plain_fields``), read in
        one go; None for anything else (the long way, ``_entry``)."""
        if self._global:
            return None
        pos = self._pos
        block = self._buf[pos:pos + BLOCK]
        fields = plain_fields(block)
        if fields is None:
            return None
        self._pos = pos + BLOCK
        return self._make_entry(block, *fields, None, start)

    def _make_entry(self, header: bytes, name: str, linkname: str, tf: bytes, size: int,
                    mode: int, uid: int, gid: int, pax: list[tuple[str, bytes]] | None,
                    start: int) -> Entry:
        entry = make_entry(header, name, linkname, tf, size, mode, uid, gid, pax, start,
                           self._what)
        entry.has_global = bool(self._global)
        return entry

    def _drain(self) -> None:
        """Read the rest of the stream (from the end-of-archive marker on) into ``tail``."""
        tail: list[bytes] | None = [bytes(memoryview(self._buf)[self._pos:])]
        self._drop_buffer()
        size = len(tail[0]) if tail else 0
        while True:
            chunk = self._stream.read(CHUNK)
            if not chunk:
                break
            self._tap(chunk)
            size += len(chunk)
            if tail is not None:
                tail.append(chunk)
                if size > TAIL_LIMIT:
                    tail = None
        self.tail = b"".join(tail) if tail is not None else None
