"""Blob writers of the registry sink: bytes are PATCHed in chunks while the layer is being
compressed (at most one chunk buffered), or spooled to a temp file for registries that refuse
chunked uploads and then sent in one PUT with a known length."""

from __future__ import annotations

import tempfile
from typing import BinaryIO, Callable

from slimmer.errors import OutputError, RegistryError
from slimmer.oci.digest import short
from slimmer.transports.registry.repository import Repository
from slimmer.transports.registry.session import iter_file

#: Replies to the first PATCH that mean "no chunked uploads here": fall back to one PUT.
CHUNKING_REFUSED = frozenset({400, 405, 411, 413, 415, 416, 501})


class RegistryBlobWriter:
    """One blob streamed to an upload session of ``repository``; use from one thread.

    ``location``: an upload session already open (a mount that fell back to an upload);
    ``on_done`` is called once when the writer is committed or aborted.
    """

    def __init__(self, repository: Repository, what: str, chunk_size: int,
                 location: str | None = None,
                 on_done: Callable[["RegistryBlobWriter"], None] | None = None) -> None:
        self._repo = repository
        self._chunk = chunk_size
        self._on_done = on_done
        self._buffer = bytearray()
        self._location = location               # newest upload URL once a session exists
        self._sent = 0                          # bytes accepted by PATCHes
        self._size = 0                          # bytes written by the caller
        self._spool: BinaryIO | None = None
        self._state = "open"
        self._what = what

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

    def flush(self) -> None:
        """Send what is buffered as a chunk (the upload stays open)."""
        if self._state == "open" and self._spool is None and self._buffer:
            self._send_chunk()

    def _send_chunk(self) -> None:
        if self._location is None:
            self._location = self._repo.start_upload(self._what)
        try:
            self._location = self._repo.patch(self._location, bytes(self._buffer), self._sent,
                                              self._what)
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
            self._repo.cancel(self._location, self._what)
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
        repo = self._repo
        try:
            if self._location is not None and self._buffer:
                self._send_chunk()        # may still switch to the spool file
            if self._spool is not None:
                repo.upload(digest, iter_file(self._spool), size, what)
            elif self._location is None:
                if repo.blob_size(digest, what) is None:
                    data = bytes(self._buffer)
                    repo.upload(digest, data, len(data), what)
            else:
                repo.finish(self._location, digest, what)
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
            self._repo.cancel(self._location, self._what)
            self._location = None
        self._release()

    def _release(self) -> None:
        self._buffer = bytearray()
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._on_done is not None:
            self._on_done(self)
