"""Files of a layout sink: temp files made atomically visible, directory fsyncs, and the blob
writer that streams one blob into ``blobs/ALG/`` while hashing it."""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Callable

from slimmer.errors import InputError, OutputError
from slimmer.oci.digest import check_digest, short

_O_EXTRA = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def create_temp(directory: str, prefix: str) -> tuple[int, str]:
    """Create a new file ``directory/prefixRANDOM`` (mode 0666 minus umask); return fd and path."""
    for _ in range(100):
        path = os.path.join(directory, prefix + secrets.token_hex(8))
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_EXTRA, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def fsync_dir(path: str) -> None:
    """Persist a directory's entries (renames); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


#: Called with (temp file, digest) when a writer commits: the sink renames it into place.
Install = Callable[[str, str], None]


class LayoutBlobWriter:
    """A blob being streamed into ``blobs/ALG/`` of a ``LayoutSink``; hashes while it writes.

    ``commit`` checks the caller's digest and size against what was written (an internal
    consistency check) and renames the temp file to the digest name. A writer for a caller
    that hashes the same bytes itself (``hashing=False``) checks the size only.
    """

    def __init__(self, label: str, directory: str, algorithm: str, install: Install,
                 forget: Callable[[str], None], hashing: bool = True) -> None:
        self._label = label
        self._install = install
        self._forget = forget
        self._algorithm = algorithm
        self._hasher = hashlib.new(algorithm) if hashing else None
        self._size = 0
        self._state = "open"
        fd, self._path = create_temp(directory, ".tmp-")
        self._file = os.fdopen(fd, "wb")

    @property
    def temp_path(self) -> str:
        """Where the bytes are written until commit."""
        return self._path

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` to the blob."""
        if self._state != "open":
            raise OutputError(f"writing {self._label} blob: writer already {self._state}")
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise OutputError(f"writing {self._label} blob: {exc.strerror or exc}") from exc
        if self._hasher is not None:
            self._hasher.update(data)
        self._size += memoryview(data).nbytes

    def flush(self) -> None:
        """Write what is buffered and sync it to disk (``oci.image.Flushable``): a blob built
        during its scan is then synced on its worker thread, and its commit, on the main
        thread after the plan, has little left to sync."""
        if self._state == "open":
            self._sync(f"writing {self._label} blob")

    def _sync(self, what: str) -> None:
        """Flush and fsync the temp file; on failure abort and raise OutputError."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self.abort()
            raise OutputError(f"{what}: {exc.strerror or exc}") from exc

    def commit(self, digest: str, size: int) -> None:
        """Make the blob visible as ``digest``; OutputError if content or size differ."""
        what = f"writing {self._label} blob {short(str(digest))}"
        if self._state != "open":
            raise OutputError(f"{what}: writer already {self._state}")
        try:
            check_digest(digest, what)
        except InputError as exc:
            self.abort()
            raise OutputError(str(exc)) from exc
        got = f"{self._algorithm}:{self._hasher.hexdigest()}" if self._hasher else digest
        if got != digest or self._size != size:
            self.abort()
            raise OutputError(f"{what}: written content is {short(got)} ({self._size} bytes), "
                              f"expected {short(digest)} ({size} bytes)")
        self._sync(what)
        try:
            self._file.close()
        except OSError as exc:
            self.abort()
            raise OutputError(f"{what}: {exc.strerror or exc}") from exc
        self._state = "committed"
        try:
            self._install(self._path, digest)
        except BaseException:
            unlink_quietly(self._path)
            raise

    def abort(self) -> None:
        """Drop the temp file; safe after commit and when called twice."""
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            self._file.close()
        except OSError:
            pass
        unlink_quietly(self._path)
        self._forget(self._path)
