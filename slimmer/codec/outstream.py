"""The last stage of a layer's pipeline on a thread of its own: hash the compressed blob and
hand it to the sink (a file write, or an upload chunk over the network), while the tar filter
and the compressor go on. A bounded queue keeps memory flat; errors come back to the caller."""

from __future__ import annotations

import hashlib
import queue
import threading

from slimmer.oci.image import BlobWriter

#: Compressed bytes that may wait for the output thread before the producer blocks.
QUEUED_BYTES = 16 << 20


class BlobOutput:
    """Hashes and writes compressed chunks to ``out`` in a background thread."""

    def __init__(self, out: BlobWriter) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._room = threading.Condition()
        self._queued = 0
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self._error is not None:
            raise self._error
        chunk = bytes(data)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="slimmer-blob-out",
                                            daemon=True)
            self._thread.start()
        with self._room:
            while self._queued > QUEUED_BYTES and self._error is None:
                self._room.wait()
            self._queued += len(chunk)
        self._queue.put(chunk)

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                if self._error is None:
                    self.hash.update(chunk)
                    self._out.write(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer
                self._error = exc
            with self._room:
                self._queued -= len(chunk)
                self._room.notify_all()

    def drain(self) -> None:
        """Wait until every queued chunk is written (the thread stays); re-raise its error."""
        with self._room:
            while self._queued and self._error is None:
                self._room.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait until everything is written; re-raise what the output thread met."""
        self._stop()
        if self._error is not None:
            raise self._error

    def discard(self) -> None:
        """Stop the output thread, writing nothing more (the caller aborts the blob)."""
        if self._error is None:
            self._error = _Discarded()
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


class _Discarded(Exception):
    """The output was thrown away."""
