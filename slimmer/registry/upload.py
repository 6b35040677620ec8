"""Blob writers of the registry sink: bytes are PATCHed in chunks while the layer is being
compressed (at most one chunk buffered), or spooled to a temp file for registries that refuse
chunked uploads and then sent in one PUT with a known length."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, BinaryIO

from ..digest import short
from ..errors import OutputError, RegistryError
from .session import iter_file

if TYPE_CHECKING:
    from .sink import RegistrySink

#: Replies to the first PATCH that mean "no chunked uploads here": fall back to one PUT.
CHUNKING_REFUSED = frozenset({400, 405, 411, 413, 415, 416, 501})


class RegistryBlobWriter:
    """One blob streamed to a registry upload session; use from one thread."""

    def __init__(self, sink: "RegistrySink", location: str | None = None) -> None:
        self._sink = sink
        self._chunk = sink.options.chunk_size
        self._buffer = bytearray()
        self._location = location               # newest upload URL once a session exists
        self._sent = 0                          # bytes accepted by PATCHes
        self._size = 0                          # bytes written by the caller
        self._spool: BinaryIO | None = None
        self._state = "open"
        self._what = f"pushing {sink.name} blob"

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data``; sends a chunk whenever a full one is buffered."""
        if self._state != "open":
            raise OutputError(f"{self._what}: writer already {self._state}")
        self._size += memoryview(data).nbytes
        if self._spool is not None:
            self._spool.write(data)
            return
        self._buffer += data
        if len(self._buffer) >= self._chunk:
            self._send_chunk()

    def _send_chunk(self) -> None:
        client, scopes = self._sink.client, self._sink.scopes()
        if self._location is None:
            self._location = client.start_upload(self._sink.repository, scopes, self._what)
        assert self._location is not None
        try:
            self._location = client.patch_chunk(self._location, bytes(self._buffer),
                                                self._sent, scopes, self._what)
        except RegistryError as exc:
            if self._sent or exc.status not in CHUNKING_REFUSED:
                raise
            self._start_spool()
            return
        self._sent += len(self._buffer)
        self._buffer.clear()

    def _start_spool(self) -> None:
        """The registry refused a chunk: keep the rest on disk for one monolithic PUT."""
        if self._location is not None:
            self._sink.client.cancel_upload(self._location, self._sink.scopes(), self._what)
            self._location = None
        self._spool = tempfile.TemporaryFile(prefix="slimmer-upload-")
        self._spool.write(self._buffer)
        self._buffer.clear()

    def commit(self, digest: str, size: int) -> None:
        """Finish the upload under ``digest`` (the registry verifies the content)."""
        what = f"{self._what} {short(digest)}"
        if self._state != "open":
            raise OutputError(f"{what}: writer already {self._state}")
        if size != self._size:
            self.abort()
            raise OutputError(f"{what}: {self._size} bytes written, expected {size}")
        client, scopes, repo = self._sink.client, self._sink.scopes(), self._sink.repository
        try:
            if self._location is not None and self._buffer:
                self._send_chunk()        # may still switch to the spool file
            if self._spool is not None:
                client.upload(repo, digest, iter_file(self._spool), size, scopes, what)
            elif self._location is None:
                if not self._sink.has_blob(digest):
                    data = bytes(self._buffer)
                    client.upload(repo, digest, data, len(data), scopes, what)
            else:
                client.finish_upload(self._location, digest, scopes, what)
                self._location = None
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self._release()

    def abort(self) -> None:
        """Cancel the upload session and drop buffered bytes; safe after commit or twice."""
        if self._state != "open":
            return
        self._state = "aborted"
        if self._location is not None:
            self._sink.client.cancel_upload(self._location, self._sink.scopes(), self._what)
            self._location = None
        self._release()

    def _release(self) -> None:
        self._buffer = bytearray()
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._sink._forget(self)
