"""Digest strings and a reader that verifies a blob's digest and size while it streams."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from slimmer.errors import BlobError, InputError

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def check_digest(value: object, what: str = "digest") -> str:
    """Return ``value`` if it is a well-formed sha256/sha512 digest string, else raise InputError."""
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise InputError(f"{what}: malformed digest {value!r}")
    return value


def sha256_digest(data: bytes) -> str:
    """Digest string of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short(digest: str) -> str:
    """Short form for messages: ``sha256:0123456789ab``."""
    return digest[:19]


def new_hasher(digest: str) -> "hashlib._Hash":
    """A hash object for the algorithm named by ``digest``."""
    algo = digest.split(":", 1)[0]
    return hashlib.new(algo)


class VerifyingReader:
    """Wraps a raw blob stream; hashes every byte and checks digest and size at EOF.

    Raises BlobError on a size overrun, a short blob, or a digest mismatch, naming ``what``.
    """

    def __init__(self, raw: BinaryIO, digest: str, size: int | None, what: str) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._what = what
        self._hasher = new_hasher(digest)
        self._count = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            chunks: list[bytes] = []
            while True:
                chunk = self.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        data = self._raw.read(n)
        if data:
            self._hasher.update(data)
            self._count += len(data)
            if self._size is not None and self._count > self._size:
                raise BlobError(
                    f"{self._what}: blob is larger than its descriptor size {self._size}")
            return data
        self._finish()
        return b""

    def readinto(self, buf: bytearray | memoryview) -> int:
        if self._done:
            return 0
        n: int = self._raw.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self._hasher.update(memoryview(buf)[:n])
            self._count += n
            if self._size is not None and self._count > self._size:
                raise BlobError(
                    f"{self._what}: blob is larger than its descriptor size {self._size}")
            return n
        self._finish()
        return 0

    def _finish(self) -> None:
        self._done = True
        if self._size is not None and self._count != self._size:
            raise BlobError(
                f"{self._what}: blob is {self._count} bytes, descriptor says {self._size}")
        got = self._digest.split(":", 1)[0] + ":" + self._hasher.hexdigest()
        if got != self._digest:
            raise BlobError(f"{self._what}: digest mismatch, content is {short(got)}")

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
