"""Tar header fields: numbers, strings, checksums, PAX records, member names and the ``Entry``
they make; the pure part of reading a tar, apart from ``codec.tarread``'s streaming."""

from __future__ import annotations

import posixpath

from slimmer.errors import LayerError
from slimmer.oci.layer import EntryKind

BLOCK = 512


def parse_number(field: bytes, what: str) -> int:
    """Decode a numeric header field: octal ASCII or GNU base-256."""
    try:   # the common field ("0000644\0"), in one call; anything else takes the long way
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        pass
    if field and field[0] & 0x80:
        value = int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
        if field[0] & 0x40:  # negative base-256
            value -= 1 << (8 * len(field) - 1)
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise LayerError(f"{what}: bad numeric field {bytes(field)!r} in tar header") from None


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def header_checksum(block: bytes | bytearray) -> int:
    return sum(block[:148]) + 256 + sum(block[156:512])


def parse_pax(data: bytes, what: str) -> list[tuple[str, bytes]]:
    """Parse PAX extended header records, keeping order and raw (possibly binary) values."""
    records: list[tuple[str, bytes]] = []
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] == 0:  # trailing padding
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise LayerError(f"{what}: malformed PAX record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise LayerError(f"{what}: malformed PAX record length") from None
        end = pos + length
        if length <= 0 or end > n or data[end - 1] != 0x0A:
            raise LayerError(f"{what}: malformed PAX record")
        key, eq, value = data[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise LayerError(f"{what}: malformed PAX record")
        records.append((key.decode("utf-8", "surrogateescape"), value))
        pos = end
    return records


def normalize_path(name: str, what: str) -> str:
    """Normalise a member name to a root-relative path ('' is the root); reject escapes."""
    core = name[:-1] if name.endswith("/") else name
    if core and core[0] not in "./" and core[-1] != "/" and "//" not in core \
            and "/." not in core:
        return core             # already normal: nothing for normpath to do
    if name.startswith("/"):
        raise LayerError(f"{what}: entry {name!r} is an absolute path")
    path = posixpath.normpath(name) if name not in ("", ".", "./") else "."
    if path == "..":
        raise LayerError(f"{what}: entry {name!r} escapes the root")
    if path.startswith("../"):
        raise LayerError(f"{what}: entry {name!r} escapes the root")
    if path.startswith("/"):  # normpath keeps a leading '//'
        raise LayerError(f"{what}: entry {name!r} is an absolute path")
    return "" if path == "." else path


class Entry:
    """One tar member: parsed fields plus the exact header bytes it was read from."""

    __slots__ = ("header", "path", "kind", "typeflag", "size", "linkname", "mode", "uid", "gid",
                 "pax", "offset", "target", "has_global")

    def __init__(self, header: bytes, path: str, kind: EntryKind, typeflag: bytes, size: int,
                 linkname: str, mode: int, uid: int, gid: int,
                 pax: list[tuple[str, bytes]] | None, offset: int) -> None:
        self.header = header          # all header blocks, extension blocks included
        self.path = path              # normalised, root-relative, no trailing slash
        self.kind = kind
        self.typeflag = typeflag
        self.size = size              # stored data bytes following the header
        self.linkname = linkname      # normalised for hardlinks, raw for symlinks
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.pax = pax                # effective PAX records (local, plus global ones)
        self.offset = offset          # offset of the first header block in the tar stream
        self.target = path            # whiteouts: the path they hide; else the path itself
        self.has_global = False       # global PAX records apply: copy needs a rewritten header

    @property
    def padded_size(self) -> int:
        return (self.size + BLOCK - 1) & ~(BLOCK - 1)

    def __repr__(self) -> str:
        return f"Entry({self.path!r}, {self.kind}, size={self.size})"


def _merge_records(base: list[tuple[str, bytes]],
                   over: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    if not base:
        return list(over)
    keys = {k for k, _ in over}
    return [r for r in base if r[0] not in keys] + list(over)
