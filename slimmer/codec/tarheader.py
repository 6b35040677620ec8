"""Tar header fields: numbers, strings, checksums, PAX records, member names and the ``Entry``
they make; the pure part of reading a tar, apart from ``codec.tarread``'s streaming."""

from __future__ import annotations

import posixpath

from slimmer.errors import LayerError
from slimmer.oci.layer import (
    DIR,
    FILE,
    HARDLINK,
    META,
    OPAQUE,
    OTHER,
    SYMLINK,
    WH_OPAQUE,
    WH_PREFIX,
    WHITEOUT,
    EntryKind,
)

BLOCK = 512
_KIND = {b"0": FILE, b"\0": FILE, b"7": FILE, b"S": FILE, b"1": HARDLINK, b"2": SYMLINK,
         b"5": DIR, b"3": OTHER, b"4": OTHER, b"6": OTHER}
_NO_DATA = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})
_EXTENDED = frozenset({b"x", b"g", b"L", b"K", b"S"})   # never a plain member


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


PlainFields = tuple[str, str, bytes, int, int, int, int]


def plain_fields(block: bytes) -> PlainFields | None:
    """(name, linkname, typeflag, size, mode, uid, gid) of a member that is one plain header
    block (ustar or v7, octal numbers, no extension records, not sparse): most members of a
    layer, read with a few calls. None for anything else, a bad checksum included: the
    caller's long way reads it, or says what is wrong."""
    tf = block[156:157]
    if tf in _EXTENDED:
        return None
    chk = block[148:156]
    try:
        if int(chk.rstrip(b"\0 ") or b"0", 8) != sum(block) - sum(chk) + 256:
            return None
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        mode = int(block[100:108].rstrip(b"\0 ") or b"0", 8)
        uid = int(block[108:116].rstrip(b"\0 ") or b"0", 8)
        gid = int(block[116:124].rstrip(b"\0 ") or b"0", 8)
    except ValueError:          # base-256 numbers and odd fields
        return None
    name = _str(block[0:100])
    if block[257:263] == b"ustar\0" and block[345]:
        prefix = _str(block[345:500])
        if prefix:
            name = prefix + "/" + name
    return name, _str(block[157:257]), tf, size, mode, uid, gid


def make_entry(header: bytes, name: str, linkname: str, tf: bytes, size: int, mode: int,
               uid: int, gid: int, pax: list[tuple[str, bytes]] | None, offset: int,
               what: str) -> Entry:
    """The Entry of a member from its header fields: the path checked and normalised, the
    kind from the type flag and the name (whiteouts, opaque markers, aufs metadata)."""
    kind = _KIND.get(tf, OTHER)
    path = normalize_path(name, what)
    if not path and kind != DIR:
        raise LayerError(f"{what}: entry {name!r} has an empty name")
    if kind == HARDLINK:
        linkname = normalize_path(linkname, f"{what}: hardlink {path!r}")
        if not linkname:
            raise LayerError(f"{what}: hardlink {path!r} has an empty target")
    if tf in _NO_DATA:
        size = 0  # these carry no data whatever the size field says (as Go and GNU tar)
    entry = Entry(header, path, kind, tf, size, linkname, mode, uid, gid, pax, offset)
    base = path.rpartition("/")[2]
    if base.startswith(WH_PREFIX):
        parent = path.rpartition("/")[0]
        if base == WH_OPAQUE:
            entry.kind = OPAQUE
            entry.target = parent
        elif base.startswith(".wh..wh."):
            entry.kind = META  # aufs metadata (.wh..wh.plnk etc.); dropped on rebuild
        else:
            entry.kind = WHITEOUT
            entry.target = (parent + "/" if parent else "") + base[len(WH_PREFIX):]
    return entry
