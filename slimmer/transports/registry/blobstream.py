"""A blob download stream that survives dropped connections by resuming with a Range request;
the caller wraps it in VerifyingReader, so whatever arrives is still checked at EOF."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Iterator

import httpx

from slimmer.errors import BlobError

if TYPE_CHECKING:
    from slimmer.transports.registry.repository import Repository

#: Times one stream may reconnect after the connection dropped or ended early.
MAX_RESUMES = 3
_RANGE_RE = re.compile(r"^bytes (\d+)-")


class ResumingBlobStream(io.RawIOBase):
    """Raw bytes of one blob; reopens at the current offset when the connection breaks."""

    def __init__(self, repository: Repository, digest: str, size: int | None,
                 what: str) -> None:
        super().__init__()
        self._repository = repository
        self._digest = digest
        self._size = size
        self._what = what
        self._offset = 0
        self._resumes = 0
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        self._eof = False
        self._open()   # errors such as 404 or 401 surface at open time, not at first read

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        response = self._repository.blob_response(self._digest, self._what, self._offset)
        self._response = response
        if response.status_code == 416:          # nothing beyond what we have: a short blob
            self._eof = True
            self._drop()
            return
        skip = 0
        if self._offset:
            match = _RANGE_RE.match(response.headers.get("content-range", ""))
            if response.status_code == 206 and match:
                if int(match.group(1)) != self._offset:
                    self._drop()
                    raise BlobError(f"{self._what}: registry resumed at byte "
                                    f"{match.group(1)}, asked for {self._offset}")
            else:                                 # Range ignored: skip what we already have
                skip = self._offset
        self._chunks = self._skipping(response.iter_raw(), skip)

    @staticmethod
    def _skipping(chunks: Iterator[bytes], skip: int) -> Iterator[bytes]:
        for chunk in chunks:
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            yield chunk[skip:]
            skip = 0

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = None
        self._chunks = None

    def _resume(self) -> bool:
        self._drop()
        if self._resumes >= MAX_RESUMES:
            return False
        self._resumes += 1
        self._open()
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            if self._eof:
                return 0
            if self._chunks is None and not self._resume():
                self._eof = True
                return 0
            assert self._chunks is not None
            try:
                chunk = next(self._chunks)
            except StopIteration:
                short = self._size is not None and self._offset < self._size
                if not short or not self._resume():
                    self._eof = True
                    self._drop()
                    return 0
                continue
            except httpx.TransportError as exc:
                if not self._resume():
                    self._drop()
                    raise BlobError(f"{self._what}: connection lost at byte {self._offset} "
                                    f"after {MAX_RESUMES} resumes: {exc}") from exc
                continue
            self._offset += len(chunk)
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._drop()
        super().close()
