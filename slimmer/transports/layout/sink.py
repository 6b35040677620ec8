"""Write an image into an OCI image layout directory, all-or-nothing.

Blobs go in first (temp file, fsync, rename to the digest name); ``index.json`` is replaced last in
``commit``. A new layout is built in a hidden sibling directory that is renamed into place at
commit, so a failed run leaves nothing behind; ``abort`` restores an existing layout exactly.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from typing import Any

from slimmer.errors import InputError, OutputError, UsageError
from slimmer.oci.digest import check_digest, sha256_digest, short
from slimmer.oci.image import BlobOrigin, BlobReuse, BlobWriter, Opener, StagedSource, copy_into
from slimmer.oci.media import ANNOT_REF_NAME, OCI_INDEX
from slimmer.oci.model import Descriptor, dump_json, load_json
from slimmer.oci.refs import LayoutRef
from slimmer.transports.layout.files import (
    LayoutBlobWriter,
    create_temp,
    fsync_dir,
    unlink_quietly,
)

#: The layout version this sink writes.
LAYOUT_VERSION = "1.0.0"



def _ref_name(entry: Any) -> str | None:
    if isinstance(entry, dict) and isinstance(entry.get("annotations"), dict):
        value = entry["annotations"].get(ANNOT_REF_NAME)
        return value if isinstance(value, str) else None
    return None


class LayoutSink:
    """A ``Sink`` writing into an OCI image layout (new or existing), tagging with ``ref.tag``.

    Safe for blob writes from several threads (one writer per thread); used once: commit or abort.
    """

    def __init__(self, ref: LayoutRef) -> None:
        if ref.digest is not None:
            raise UsageError(f"{ref}: a destination layout takes :TAG, not @DIGEST")
        self.ref = ref
        self.name = str(ref)
        self.tag = ref.tag
        self.label = f"oci:{ref.path}"
        self._path = os.path.abspath(ref.path)
        self._lock = threading.RLock()
        self._state = "open"
        self._root: str | None = None          # where blobs go: the temp dir for a new layout
        self._tmpdir: str | None = None
        self._temps: set[str] = set()          # temp files not yet renamed or removed
        self._created_blobs: list[str] = []    # blob files this sink made appear
        self._created_files: list[str] = []    # oci-layout written into an existing layout
        self._created_dirs: list[str] = []     # blobs/, blobs/ALG/ and missing parents
        self._blob_dirs: set[str] = set()
        self._new = self._inspect_destination()

    # -- destination state --------------------------------------------------------------------

    def _fail(self, exc: OSError, doing: str = "") -> OutputError:
        detail = exc.strerror or str(exc)
        where = f" {exc.filename}" if exc.filename else ""
        return OutputError(f"writing {self.label}{doing}: {detail}{where}")

    def _inspect_destination(self) -> bool:
        """True for a new layout (missing or empty dir); validates an existing layout."""
        try:
            names = os.listdir(self._path)
        except FileNotFoundError:
            return True
        except NotADirectoryError as exc:
            raise OutputError(f"writing {self.label}: exists and is not a directory") from exc
        except OSError as exc:
            raise self._fail(exc) from exc
        if not names:
            return True
        if "oci-layout" not in names and "index.json" not in names:
            raise OutputError(f"writing {self.label}: directory is neither empty nor an OCI "
                              f"image layout")
        if "oci-layout" in names:
            what = f"writing {self.label}: existing oci-layout"
            try:
                with open(os.path.join(self._path, "oci-layout"), "rb") as fh:
                    doc = load_json(fh.read(4096), what)
            except InputError as exc:
                raise OutputError(str(exc)) from exc
            except OSError as exc:
                raise self._fail(exc) from exc
            version = doc.get("imageLayoutVersion")
            if not isinstance(version, str) or version.split(".")[0] != "1":
                raise OutputError(f"{what}: unsupported imageLayoutVersion {version!r}")
        self._read_index()
        return False

    def _read_index(self) -> dict[str, Any]:
        """The destination's current index.json document (an empty one if it has none)."""
        what = f"writing {self.label}: existing index.json"
        try:
            with open(os.path.join(self._path, "index.json"), "rb") as fh:
                doc = load_json(fh.read(), what)
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        except InputError as exc:
            raise OutputError(str(exc)) from exc
        except OSError as exc:
            raise self._fail(exc) from exc
        manifests = doc.get("manifests", [])
        if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
            raise OutputError(f"{what}: 'manifests' is not a list of objects")
        return doc

    def current(self) -> bytes | None:
        """The manifest or index bytes the destination tag points at now (None: no such tag)."""
        if self._new or self.tag is None:
            return None
        for entry in self._read_index().get("manifests") or ():
            if _ref_name(entry) == self.tag and isinstance(entry, dict):
                try:
                    digest = check_digest(entry.get("digest"), "index.json entry")
                except InputError:
                    return None
                path = os.path.join(self._path, "blobs", *digest.split(":", 1))
                if not os.path.isfile(path) or os.path.getsize(path) > (4 << 20):
                    return None
                try:
                    with open(path, "rb") as fh:
                        return fh.read()
                except OSError:
                    return None
        return None

    def _check_open(self) -> None:
        if self._state != "open":
            raise OutputError(f"writing {self.label}: sink already {self._state}")

    def _prepare(self) -> str:
        """Directory blobs are written under; creates the temp dir of a new layout on first use."""
        with self._lock:
            self._check_open()
            if self._root is not None:
                return self._root
            if not self._new:
                self._root = self._path
                return self._root
            parent, base = os.path.split(self._path)
            try:
                self._make_parents(parent)
                for _ in range(100):
                    candidate = os.path.join(parent, f".{base}.tmp-{secrets.token_hex(4)}")
                    try:
                        os.mkdir(candidate)
                    except FileExistsError:
                        continue
                    break
                else:
                    raise OutputError(f"writing {self.label}: no free temporary directory name")
            except OSError as exc:
                raise self._fail(exc) from exc
            self._tmpdir = self._root = candidate
            return candidate

    def _make_parents(self, parent: str) -> None:
        missing = []
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            os.mkdir(directory)
            self._created_dirs.append(directory)

    def _blob_dir(self, algorithm: str) -> str:
        with self._lock:
            root = self._prepare()
            directory = root
            for part in ("blobs", algorithm):
                directory = os.path.join(directory, part)
                if not os.path.isdir(directory):
                    try:
                        os.mkdir(directory)
                    except OSError as exc:
                        raise self._fail(exc) from exc
                    if not self._new:
                        self._created_dirs.append(directory)
            self._blob_dirs.add(directory)
            return directory

    def _blob_path(self, digest: str) -> str | None:
        """Path a blob has (or would have); None while a new layout has no directory yet."""
        try:
            check_digest(digest, f"writing {self.label} blob")
        except InputError as exc:
            raise OutputError(str(exc)) from exc
        root = self._root or (None if self._new else self._path)
        if root is None:
            return None
        return os.path.join(root, "blobs", *digest.split(":", 1))

    # -- called by writers --------------------------------------------------------------------

    def _install(self, temp: str, digest: str) -> None:
        """Rename a committed writer's temp file to the digest name (or drop it if present)."""
        with self._lock:
            self._temps.discard(temp)
            if self._state != "open":
                raise OutputError(f"writing {self.label} blob {short(digest)}: "
                                  f"sink already {self._state}")
            final = self._blob_path(digest)
            assert final is not None
            try:
                if os.path.exists(final):
                    os.unlink(temp)
                    return
                os.replace(temp, final)
            except OSError as exc:
                raise self._fail(exc, f" blob {short(digest)}") from exc
            self._created_blobs.append(final)

    def _forget_temp(self, temp: str) -> None:
        with self._lock:
            self._temps.discard(temp)

    # -- Sink protocol ------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """True if the blob is already stored (in the layout, or written by this sink)."""
        path = self._blob_path(digest)
        return path is not None and os.path.isfile(path)

    def reuse_blob(self, digest: str, size: int, origins: tuple[BlobOrigin, ...] = ()
                   ) -> BlobReuse:
        """``ReusesBlobs``: whether the layout holds the blob with that size (a layout has
        nothing to mount from)."""
        path = self._blob_path(digest)
        if path is None or not os.path.isfile(path):
            return BlobReuse.MISSING
        return BlobReuse.PRESENT if os.path.getsize(path) == size else BlobReuse.MISMATCH

    def blob_origin(self) -> BlobOrigin | None:
        return None

    def blob_writer(self, algorithm: str = "sha256", verified: bool = False) -> BlobWriter:
        """A new writer for one blob; use one per thread. ``verified``: the caller hashes what
        it writes and commits under the digest it computed, so the writer need not hash it."""
        if algorithm not in ("sha256", "sha512"):
            raise OutputError(f"writing {self.label} blob: unsupported digest algorithm "
                              f"{algorithm!r}")
        with self._lock:
            directory = self._blob_dir(algorithm)
            try:
                writer = LayoutBlobWriter(self.label, directory, algorithm, self._install,
                                          self._forget_temp, hashing=not verified)
            except OSError as exc:
                raise self._fail(exc) from exc
            self._temps.add(writer.temp_path)
            return writer

    def copy_blob(self, descriptor: Descriptor, opener: Opener,
                  origin: BlobOrigin | None = None) -> None:
        """Stream a blob in 1 MiB chunks unless present; a present blob must have the right size."""
        path = self._blob_path(descriptor.digest)
        if path is not None and os.path.isfile(path):
            size = os.path.getsize(path)
            if size != descriptor.size:
                raise OutputError(f"writing {self.label} blob {short(descriptor.digest)}: "
                                  f"existing blob is {size} bytes, descriptor says "
                                  f"{descriptor.size}")
            return
        # the source stream is verified against the digest and size at its end
        writer = self.blob_writer(descriptor.digest.split(":", 1)[0], verified=True)
        copy_into(writer, opener, descriptor.digest, descriptor.size)

    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        """Store exact bytes (manifest, index or config) and return their descriptor."""
        digest = sha256_digest(raw)
        if not self.has_blob(digest):
            writer = self.blob_writer()
            try:
                writer.write(raw)
                writer.commit(digest, len(raw))
            except BaseException:
                writer.abort()
                raise
        return Descriptor(media_type, digest, len(raw))

    def staged(self, descriptor: Descriptor) -> StagedSource:
        """What this sink stored, as a Source resolving to ``descriptor``, before ``commit``."""
        from slimmer.transports.layout.source import StagedLayoutSource
        self._check_open()
        root = self._prepare()
        if not self.has_blob(descriptor.digest):
            raise OutputError(f"writing {self.label}: manifest {short(descriptor.digest)} was "
                              f"not stored")
        return StagedLayoutSource(root, descriptor, self.name)

    def commit(self, descriptor: Descriptor) -> None:
        """Point the tag at ``descriptor`` in index.json (written last); the layout is then final.

        Without a sink tag a ``ref.name`` annotation already on ``descriptor`` acts as the tag.
        On failure the sink aborts itself, so the destination is left as it was.
        """
        with self._lock:
            self._check_open()
            try:
                self._commit_locked(descriptor)
            except BaseException as exc:
                self._cleanup()
                self._state = "aborted"
                if isinstance(exc, OSError):
                    raise self._fail(exc) from exc
                raise
            self._state = "committed"

    def _commit_locked(self, descriptor: Descriptor) -> None:
        root = self._prepare()
        if not self.has_blob(descriptor.digest):
            raise OutputError(f"writing {self.label}: manifest {short(descriptor.digest)} was "
                              f"not stored before commit")
        for directory in sorted(self._blob_dirs):
            fsync_dir(directory)
        index = self._read_index() if not self._new else {}
        data = dump_json(self._updated_index(index, descriptor))
        layout_file = os.path.join(root, "oci-layout")
        if not os.path.exists(layout_file):
            self._write_atomic(root, "oci-layout", dump_json({"imageLayoutVersion":
                                                              LAYOUT_VERSION}))
            if not self._new:
                self._created_files.append(layout_file)
        self._write_atomic(root, "index.json", data)
        if self._new:
            assert self._tmpdir is not None
            fsync_dir(self._tmpdir)
            try:
                os.rename(self._tmpdir, self._path)
            except OSError as exc:
                raise OutputError(f"writing {self.label}: could not move the new layout into "
                                  f"place ({exc.strerror or exc}); did the directory appear "
                                  f"meanwhile?") from exc
            self._tmpdir = None
            self._root = self._path
        fsync_dir(os.path.dirname(self._path) if self._new else root)

    def _entry(self, descriptor: Descriptor) -> dict[str, Any]:
        entry = descriptor.to_json()
        if self.tag is not None:
            annotations = dict(descriptor.annotations or {})
            annotations[ANNOT_REF_NAME] = self.tag
            entry["annotations"] = annotations
        return entry

    def _updated_index(self, index: dict[str, Any], descriptor: Descriptor) -> dict[str, Any]:
        """index.json with the new entry replacing same-tag entries in place (others kept)."""
        entry = self._entry(descriptor)
        tag = _ref_name(entry)
        manifests: list[Any] = list(index.get("manifests", []))
        if tag is None:
            if dump_json(entry) not in {dump_json(m) for m in manifests}:
                manifests.append(entry)
        else:
            kept: list[Any] = []
            placed = False
            for existing in manifests:
                if _ref_name(existing) != tag:
                    kept.append(existing)
                elif not placed:
                    kept.append(entry)
                    placed = True
            if not placed:
                kept.append(entry)
            manifests = kept
        out = dict(index)
        out.update(schemaVersion=2, mediaType=OCI_INDEX, manifests=manifests)
        return out

    def _write_atomic(self, directory: str, name: str, data: bytes) -> None:
        """Write ``directory/name`` via a temp file, fsync and rename."""
        fd, temp = create_temp(directory, f".{name}.tmp-")
        self._temps.add(temp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, os.path.join(directory, name))
        except BaseException:
            unlink_quietly(temp)
            raise
        finally:
            self._temps.discard(temp)

    def abort(self) -> None:
        """Remove everything this sink added; a no-op after commit or a second abort."""
        with self._lock:
            if self._state != "open":
                return
            self._cleanup()
            self._state = "aborted"

    def _cleanup(self) -> None:
        for temp in sorted(self._temps):
            unlink_quietly(temp)
        self._temps.clear()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        else:
            for path in reversed(self._created_blobs + self._created_files):
                unlink_quietly(path)
        self._created_blobs.clear()
        self._created_files.clear()
        for directory in reversed(self._created_dirs):
            try:
                os.rmdir(directory)
            except OSError:
                pass
        self._created_dirs.clear()
