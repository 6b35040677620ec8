"""Opening an input layer as a verified tar stream, decoded ahead in a background thread.

The reader thread does the blob digest check, decompression and diff_id hashing (C code that
releases the GIL) while the caller parses tar and feeds the compressor: two stages overlap per
layer, with a small bounded queue between them.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from slimmer.codec.compression import READ_CHUNK, DiffIdReader, blame_blob, open_decompressed
from slimmer.errors import LayerError
from slimmer.oci.image import Layer
from slimmer.oci.media import Compression

PREFETCH_DEPTH = 4


class Prefetcher:
    """Reads ``stream`` ahead in a thread; ``read`` returns its chunks in order, re-raising
    any error the reader thread met."""

    def __init__(self, stream: BinaryIO, depth: int = PREFETCH_DEPTH) -> None:
        self._stream = stream
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="slimmer-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(READ_CHUNK)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if not item:
            self._done = True
        return item

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Stop the reader thread and wait for it; safe to call twice."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._done = True


@contextmanager
def open_layer_tar(layer: Layer, what: str, *, check_diff_id: bool = True,
                   hash_in_caller: bool = False
                   ) -> Iterator[tuple[BinaryIO, DiffIdReader, Compression]]:
    """Yield (tar stream, its DiffIdReader, detected compression) for an input layer.

    The blob digest is verified at the end of the raw stream and the diff_id at the end of the
    tar stream; content errors caused by a corrupt blob are reported as the blob error.
    ``hash_in_caller`` moves the diff_id hashing from the reader thread to the caller's, for
    callers that do little else (recompression), so the two threads carry similar loads.
    """
    raw = layer.open_compressed()
    pre: Prefetcher | None = None
    try:
        stream, kind = open_decompressed(raw, what)
        expected = layer.diff_id if check_diff_id else None
        if hash_in_caller:
            pre = Prefetcher(stream)
            tar = DiffIdReader(pre, expected, what, hashing=check_diff_id)  # type: ignore[arg-type]
            yield tar, tar, kind  # type: ignore[misc]
        else:
            tar = DiffIdReader(stream, expected, what, hashing=check_diff_id)
            pre = Prefetcher(tar)  # type: ignore[arg-type]
            yield pre, tar, kind  # type: ignore[misc]
    except LayerError as exc:
        if pre is not None:
            pre.close()
        raise blame_blob(raw, exc) from exc
    finally:
        if pre is not None:
            pre.close()
        raw.close()
