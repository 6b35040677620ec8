"""Tar header writing for the few entries a rebuild must change (renamed, relinked, retyped)
and the header-only entries it adds (whiteouts, opaque markers); deterministic by design."""

from __future__ import annotations

from slimmer.codec.tarread import BLOCK, Entry, header_checksum, parse_number
from slimmer.oci.layer import whiteout_name


def encode_pax(records: list[tuple[str, bytes]]) -> bytes:
    """Serialise PAX records; each record's length field counts itself."""
    out = []
    for key, value in records:
        body = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length = len(str(length)) + len(body)
        out.append(str(length).encode() + body)
    return b"".join(out)


def _octal(value: int, width: int) -> bytes:
    text = b"%0*o" % (width - 1, value)
    if len(text) > width - 1:
        # GNU base-256 for values that do not fit (the PAX record carries them too)
        return bytes([0x80]) + value.to_bytes(width - 1, "big")
    return text + b"\0"


def _finish(block: bytearray) -> bytes:
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % header_checksum(block)
    return bytes(block)


def _pax_block(records: list[tuple[str, bytes]]) -> bytes:
    data = encode_pax(records)
    hdr = bytearray(BLOCK)
    hdr[0:14] = b"././@PaxHeader"
    hdr[100:108] = _octal(0o644, 8)
    hdr[108:116] = _octal(0, 8)
    hdr[116:124] = _octal(0, 8)
    hdr[124:136] = _octal(len(data), 12)
    hdr[136:148] = _octal(0, 12)
    hdr[156:157] = b"x"
    hdr[257:265] = b"ustar\x0000"
    pad = (-len(data)) % BLOCK
    return _finish(hdr) + data + bytes(pad)


def _set_name_fields(block: bytearray, path: str, linkname: str | None,
                     records: list[tuple[str, bytes]], sparse_name: bool) -> None:
    """Put ``path``/``linkname`` in the header or, when too long, in PAX records."""
    raw = path.encode("utf-8", "surrogateescape")
    records[:] = [r for r in records if r[0] not in ("path", "GNU.sparse.name")
                  and (linkname is None or r[0] != "linkpath")]
    gnu = block[257:265] == b"ustar  \0"
    if sparse_name:
        records.append(("GNU.sparse.name", raw))
    elif len(raw) <= 100 and raw.isascii():
        block[0:100] = raw.ljust(100, b"\0")
        if not gnu:
            block[345:500] = bytes(155)
    else:
        records.append(("path", raw))
        block[0:100] = raw[:100].ljust(100, b"\0")
        if not gnu:
            block[345:500] = bytes(155)
    if linkname is not None:
        lraw = linkname.encode("utf-8", "surrogateescape")
        if len(lraw) <= 100 and lraw.isascii():
            block[157:257] = lraw.ljust(100, b"\0")
        else:
            records.append(("linkpath", lraw))
            block[157:257] = lraw[:100].ljust(100, b"\0")


def rewrite_header(entry: Entry, *, path: str | None = None, linkname: str | None = None,
                   typeflag: bytes | None = None) -> bytes:
    """New header blocks for ``entry`` with another path, hardlink target or type flag.

    Every other field and PAX record (xattrs, big ids, sparse maps, times) is kept.
    """
    blocks = entry.header
    idx = _member_block_index(blocks)  # old-GNU sparse blocks may follow the member block
    member = bytearray(blocks[idx:idx + BLOCK])
    tail = blocks[idx + BLOCK:]
    records = list(entry.pax or [])
    sparse_name = any(k == "GNU.sparse.name" for k, _ in records)
    _set_name_fields(member, path if path is not None else entry.path, linkname, records,
                     sparse_name)
    if typeflag is not None:
        member[156:157] = typeflag
        if typeflag == b"1":
            member[124:136] = _octal(0, 12)
            records = [r for r in records if r[0] != "size"]
    out = _pax_block(records) if records else b""
    return out + _finish(member) + tail


def _member_block_index(blocks: bytes) -> int:
    """Offset of the member header block in a header that ends with old-GNU sparse blocks."""
    pos = 0
    while pos < len(blocks):
        tf = blocks[pos + 156:pos + 157]
        if tf in (b"x", b"g", b"L", b"K"):
            size = parse_number(blocks[pos + 124:pos + 136], "header")
            pos += BLOCK + ((size + BLOCK - 1) & ~(BLOCK - 1))
            continue
        return pos
    raise ValueError("no member block")


def make_header(path: str, typeflag: bytes = b"0", *, size: int = 0, mode: int = 0o644,
                uid: int = 0, gid: int = 0, mtime: int = 0, linkname: str = "") -> bytes:
    """A fresh deterministic POSIX header (with PAX records when names are long)."""
    block = bytearray(BLOCK)
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[156:157] = typeflag
    block[257:265] = b"ustar\x0000"
    records: list[tuple[str, bytes]] = []
    _set_name_fields(block, path + ("/" if typeflag == b"5" and path else ""),
                     linkname or None, records, False)
    out = _pax_block(records) if records else b""
    return out + _finish(block)


def whiteout_header(path: str, opaque: bool = False) -> bytes:
    """Header of a whiteout (``.wh.NAME``) or an opaque marker inside directory ``path``."""
    return make_header(whiteout_name(path, opaque))


END_OF_ARCHIVE = bytes(2 * BLOCK)
