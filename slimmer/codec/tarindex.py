"""The members of a tar file on disk, found by walking its headers and seeking over the data:
an archive (``docker save``, ``oci-archive``) is read in place, never extracted. A member is
opened later as a fresh stream over its byte range of the file."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import BinaryIO, cast

from slimmer.codec.tarread import BLOCK, header_checksum, parse_number, parse_pax
from slimmer.errors import BlobError, InputError, LayerError

_ZERO_BLOCK = bytes(BLOCK)
#: Largest PAX / GNU long-name record accepted in an archive header.
_EXTENSION_LIMIT = 1 << 20
#: Symlinks followed from one name before giving up (a loop).
_MAX_LINKS = 16
_FILE_TYPES = frozenset({b"0", b"\0", b"7"})


@dataclass(frozen=True)
class Member:
    """One member: its normalised name, type flag, data offset in the file, size and link."""

    name: str
    typeflag: bytes
    offset: int
    size: int
    linkname: str = ""

    @property
    def is_file(self) -> bool:
        return self.typeflag in _FILE_TYPES


def member_name(name: str) -> str | None:
    """A member name normalised to archive-root-relative form (``./a//b`` -> ``a/b``, the
    root -> ``""``); None when it is absolute or leaves the archive (``..``)."""
    if name.startswith("/"):
        return None
    path = posixpath.normpath(name)
    if path == ".." or path.startswith(("../", "/")):
        return None
    return "" if path == "." else path


class TarIndex:
    """The members of the tar file ``path`` by name (the last of equal names wins, as tar)."""

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what
        self.members: dict[str, Member] = {}
        try:
            with open(path, "rb") as fh:
                info = os.fstat(fh.fileno())
                self._identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
                self._walk(fh, info.st_size)
        except FileNotFoundError as exc:
            raise InputError(f"{what}: no such file") from exc
        except IsADirectoryError as exc:
            raise InputError(f"{what}: is a directory, not a tar archive") from exc
        except LayerError as exc:
            raise InputError(f"{what}: not a valid tar archive ({exc})") from exc
        except OSError as exc:
            raise InputError(f"{what}: {exc.strerror or exc}") from exc

    def _walk(self, fh: BinaryIO, file_size: int) -> None:
        """Read every header; the data of each member is skipped with a seek."""
        what = self.what
        pos = 0
        pax: dict[str, bytes] = {}
        global_pax: dict[str, bytes] = {}
        long_name = long_link = None
        while True:
            fh.seek(pos)
            block = fh.read(BLOCK)
            if len(block) < BLOCK:
                if pos == 0:
                    raise InputError(f"{what}: empty file, not a tar archive")
                raise InputError(f"{what}: truncated (no end-of-archive marker)")
            if block == _ZERO_BLOCK:
                if pax or long_name or long_link:
                    raise InputError(f"{what}: end of archive inside an extended header")
                return
            if parse_number(block[148:156], what) != header_checksum(block):
                start = "does not start with a tar header" if pos == 0 else \
                    f"bad tar header checksum at offset {pos}"
                raise InputError(f"{what}: {start}")
            typeflag = block[156:157]
            size = parse_number(block[124:136], what)
            data = pos + BLOCK
            end = data + ((size + BLOCK - 1) & ~(BLOCK - 1))
            if typeflag in (b"x", b"g", b"L", b"K"):
                if size > _EXTENSION_LIMIT:
                    raise InputError(f"{what}: extended header of {size} bytes is too large")
                ext = fh.read(size)
                if len(ext) < size:
                    raise InputError(f"{what}: truncated inside an extended header")
                if typeflag == b"x":
                    pax.update(parse_pax(ext, what))
                elif typeflag == b"g":
                    global_pax.update(parse_pax(ext, what))
                elif typeflag == b"L":
                    long_name = ext.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                else:
                    long_link = ext.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                pos = end
                continue
            records = {**global_pax, **pax}
            if "size" in records:
                try:
                    size = int(records["size"])
                except ValueError:
                    raise InputError(f"{what}: bad PAX size record") from None
                end = data + ((size + BLOCK - 1) & ~(BLOCK - 1))
            if typeflag in (b"1", b"2", b"3", b"4", b"5", b"6"):
                size, end = 0, data
            if data + size > file_size:
                raise InputError(f"{what}: truncated (a member's data ends past the end of "
                                 f"the file)")
            name = _text(records.get("path")) or long_name or _header_name(block)
            link = _text(records.get("linkpath")) or long_link or \
                block[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            normal = member_name(name)
            if normal:
                self.members[normal] = Member(normal, typeflag, data, size, link)
            pax, long_name, long_link = {}, None, None
            pos = end

    def find(self, name: str, what: str) -> Member:
        """The regular file ``name`` names, following symlinks and hardlinks inside the
        archive; InputError if it is missing or any step leaves the archive."""
        normal = member_name(name)
        if normal is None or not normal:
            raise InputError(f"{what}: path {name!r} escapes the archive")
        for _ in range(_MAX_LINKS):
            member = self.members.get(normal)
            if member is None:
                raise InputError(f"{what}: {normal!r} is not in the archive")
            if member.is_file:
                return member
            if member.typeflag == b"1":
                target = member_name(member.linkname)
            elif member.typeflag == b"2":
                base = posixpath.dirname(normal)
                link = member.linkname
                target = None if link.startswith("/") else \
                    member_name(posixpath.join(base, link))
            else:
                raise InputError(f"{what}: {normal!r} is not a regular file in the archive")
            if not target:
                raise InputError(f"{what}: {normal!r} links to {member.linkname!r}, which "
                                 f"escapes the archive")
            normal = target
        raise InputError(f"{what}: {name!r}: too many levels of links")

    def get(self, name: str) -> Member | None:
        """The regular file ``name`` names (links followed), None when there is none."""
        try:
            return self.find(name, self.what)
        except InputError:
            return None

    def open(self, member: Member, what: str) -> BinaryIO:
        """A fresh stream of the member's bytes; BlobError if the archive changed since it was
        indexed or ends early."""
        try:
            fh = open(self.path, "rb")
        except OSError as exc:
            raise BlobError(f"{what}: {exc.strerror or exc}") from exc
        info = os.fstat(fh.fileno())
        if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != self._identity:
            fh.close()
            raise BlobError(f"{what}: {self.path} changed while it was being read")
        fh.seek(member.offset)
        return cast(BinaryIO, _Slice(fh, member.size, what))

    def read(self, name: str, limit: int, what: str) -> bytes:
        """The whole content of a small member (InputError when over ``limit`` bytes)."""
        member = self.find(name, what)
        if member.size > limit:
            raise InputError(f"{what}: {member.size} bytes is over the {limit}-byte limit")
        with self.open(member, what) as stream:
            return stream.read()


class _Slice:
    """``size`` bytes of an open file from its current position; a short file is an error."""

    def __init__(self, fh: BinaryIO, size: int, what: str) -> None:
        self._fh = fh
        self._left = size
        self._what = what

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._fh.read(want)
        if not data:
            raise BlobError(f"{self._what}: archive ends inside the member")
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "_Slice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "surrogateescape") if value is not None else None


def _header_name(block: bytes) -> str:
    name = block[0:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if block[257:263] == b"ustar\0":
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if prefix:
            name = prefix + "/" + name
    return name
