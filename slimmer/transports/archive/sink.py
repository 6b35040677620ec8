"""Write an image as a tar archive, all-or-nothing: blobs are staged in an OCI layout in a
private directory next to the destination; ``commit`` writes the tar to a temp file there and
renames it into place, so a failed run leaves the destination as it was.

Both kinds hold an OCI layout (``oci-layout``, ``index.json``, ``blobs/sha256/``); a
``docker-archive`` adds ``manifest.json`` and ``repositories`` pointing into ``blobs/``, the
shape Docker 25+ ``docker save`` writes, which older ``docker load`` reads too (it follows
``manifest.json``). Members are sorted, with mtime 0: the same image gives the same bytes.
"""

from __future__ import annotations

import os
import secrets
import shutil
from typing import BinaryIO

from slimmer.codec.tarwrite import END_OF_ARCHIVE, make_header
from slimmer.errors import InputError, OutputError, UsageError
from slimmer.oci.digest import short
from slimmer.oci.image import BlobOrigin, BlobReuse, BlobWriter, Opener
from slimmer.oci.media import INDEX_TYPES, NONE, ZSTD
from slimmer.oci.model import Descriptor, Manifest
from slimmer.oci.refs import ArchiveKind, ArchiveRef, LayoutRef
from slimmer.transports.archive.dockerjson import (
    MANIFEST_JSON,
    REPOSITORIES,
    manifest_json,
    repositories_json,
)
from slimmer.transports.layout.files import create_temp, fsync_dir, unlink_quietly
from slimmer.transports.layout.sink import LayoutSink

_COPY = 1 << 20
#: Annotation containerd (and Docker 25+) put on index.json entries: the full image name.
ANNOT_IMAGE_NAME = "io.containerd.image.name"


class ArchiveSink:
    """A ``Sink`` writing ``docker-archive:FILE[:NAME:TAG]`` or ``oci-archive:FILE[:TAG]``."""

    def __init__(self, ref: ArchiveRef) -> None:
        if ref.digest is not None or ref.index is not None:
            raise UsageError(f"{ref}: a destination archive takes a tag, not "
                             f"{'@DIGEST' if ref.digest else '@N'}")
        self.ref = ref
        self.name = str(ref)
        self.label = f"{ref.kind}:{ref.path}"
        self._path = os.path.abspath(ref.path)
        parent = os.path.dirname(self._path)
        if not os.path.isdir(parent):
            raise OutputError(f"writing {self.label}: directory {parent} does not exist")
        if os.path.isdir(self._path):
            raise OutputError(f"writing {self.label}: is a directory")
        # Created by the layout sink on the first blob, removed at commit or abort.
        self._staging = os.path.join(parent, f".{os.path.basename(self._path)}.staging-"
                                             f"{secrets.token_hex(4)}")
        self._tag = ref.tag if ref.kind == ArchiveKind.OCI else \
            (ref.name.rpartition(":")[2] if ref.name else None)
        self._layout = LayoutSink(LayoutRef(os.path.join(self._staging, "layout"), self._tag))
        self._manifests: dict[str, bytes] = {}
        self._state = "open"

    # -- what the format can hold ---------------------------------------------------------

    def output_compression(self, requested: str, images: int) -> str:
        """``FormatLimits``: a docker archive holds one image whose layers ``docker load``
        reads: zstd becomes uncompressed (as ``docker save`` writes layers), gzip stays (every
        ``docker load`` decompresses gzip layers); an OCI archive holds anything."""
        if self.ref.kind == ArchiveKind.OCI:
            return requested
        if images > 1:
            raise UsageError(f"writing {self.label}: a docker archive holds one image, the "
                             f"source has {images} platforms; choose one with --platform")
        if "+" in requested:
            raise UsageError(f"writing {self.label}: a docker archive holds one variant; use "
                             f"--compression gzip or none")
        return NONE.value if requested == ZSTD.value else requested

    # -- Sink protocol (blobs and manifests go to the staged layout) ----------------------

    def has_blob(self, digest: str) -> bool:
        return self._layout.has_blob(digest)

    def reuse_blob(self, digest: str, size: int, origins: tuple[BlobOrigin, ...] = ()
                   ) -> BlobReuse:
        return self._layout.reuse_blob(digest, size, origins)

    def blob_origin(self) -> BlobOrigin | None:
        return None

    def blob_writer(self, *, verified: bool = False) -> BlobWriter:
        return self._layout.blob_writer(verified=verified)

    def copy_blob(self, descriptor: Descriptor, opener: Opener,
                  origin: BlobOrigin | None = None) -> None:
        self._layout.copy_blob(descriptor, opener, origin)

    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        descriptor = self._layout.put_manifest(raw, media_type)
        self._manifests[descriptor.digest] = raw
        return descriptor

    def commit(self, descriptor: Descriptor) -> None:
        """Write the archive: the staged layout (and for a docker archive its
        ``manifest.json``) into a temp file, renamed over the destination."""
        if self._state != "open":
            raise OutputError(f"writing {self.label}: sink already {self._state}")
        try:
            extra = self._docker_files(descriptor) if self.ref.kind == ArchiveKind.DOCKER \
                else {}
            annotations = dict(descriptor.annotations or {})
            if self.ref.name:
                annotations[ANNOT_IMAGE_NAME] = self.ref.name
            self._layout.commit(Descriptor(descriptor.media_type, descriptor.digest,
                                           descriptor.size, annotations or None,
                                           descriptor.platform, descriptor.extra))
            self._pack(os.path.join(self._staging, "layout"), extra)
        except BaseException:
            self._state = "aborted"
            self._cleanup()
            raise
        self._state = "committed"
        self._cleanup()

    def abort(self) -> None:
        """Drop everything staged; the destination was never touched. Safe to call twice."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._layout.abort()
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    # -- writing the tar ------------------------------------------------------------------

    def _docker_files(self, descriptor: Descriptor) -> dict[str, bytes]:
        """``manifest.json`` and ``repositories`` for the one image being committed."""
        if descriptor.media_type in INDEX_TYPES:
            raise OutputError(f"writing {self.label}: a docker archive holds one image, "
                              f"not an index")
        raw = self._manifests.get(descriptor.digest)
        if raw is None:
            raise OutputError(f"writing {self.label}: manifest {short(descriptor.digest)} was "
                              f"not stored before commit")
        try:
            manifest = Manifest.parse(raw, descriptor.media_type, f"writing {self.label}")
        except InputError as exc:
            raise OutputError(str(exc)) from exc
        unloadable = [d for d in manifest.layers if d.media_type.endswith("+zstd")]
        if unloadable:
            raise OutputError(f"writing {self.label}: layer {short(unloadable[0].digest)} is "
                              f"zstd, which docker load cannot read; use --compression gzip")
        layers = [_blob_member(d.digest) for d in manifest.layers]
        files = {MANIFEST_JSON: manifest_json(_blob_member(manifest.config.digest), layers,
                                              self.ref.name)}
        top = manifest.layers[-1].digest.split(":", 1)[1] if manifest.layers else ""
        repositories = repositories_json(self.ref.name, top)
        if repositories is not None:
            files[REPOSITORIES] = repositories
        return files

    def _pack(self, layout: str, extra: dict[str, bytes]) -> None:
        """Tar ``layout`` and ``extra`` into a temp file, fsync, rename over the target."""
        directory = os.path.dirname(self._path)
        fd, temp = create_temp(directory, f".{os.path.basename(self._path)}.tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for name, path in _layout_members(layout):
                    if path is None:
                        out.write(make_header(name, b"5", mode=0o755))
                    else:
                        _write_file(out, name, path)
                for name, data in sorted(extra.items()):
                    out.write(make_header(name, size=len(data)))
                    out.write(data + bytes(-len(data) % 512))
                out.write(END_OF_ARCHIVE)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self._path)
        except OSError as exc:
            unlink_quietly(temp)
            raise OutputError(f"writing {self.label}: {exc.strerror or exc}") from exc
        except BaseException:
            unlink_quietly(temp)
            raise
        fsync_dir(directory)


def _blob_member(digest: str) -> str:
    algorithm, hexpart = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexpart}"


def _layout_members(root: str) -> list[tuple[str, str | None]]:
    """(member name, file path or None for a directory) of a layout, sorted, dirs first."""
    out: list[tuple[str, str | None]] = []
    for current, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(current, root).replace(os.sep, "/")
        if rel != ".":
            out.append((rel, None))
        for name in sorted(files):
            out.append(((name if rel == "." else f"{rel}/{name}"),
                        os.path.join(current, name)))
    return out


def _write_file(out: BinaryIO, name: str, path: str) -> None:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        out.write(make_header(name, size=size))
        left = size
        while left:
            chunk = fh.read(min(_COPY, left))
            if not chunk:
                raise OutputError(f"writing archive: {path} shrank while being written")
            out.write(chunk)
            left -= len(chunk)
    out.write(bytes(-size % 512))

