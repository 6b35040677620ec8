"""Read an image from an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``): a
directory, or any other ``LayoutFiles`` (the members of an ``oci-archive`` tar).

Everything is read through digest-verifying streams; manifests and configs are read with a size
limit, layers are never opened at resolve time. Nothing is ever written into the layout.
"""

from __future__ import annotations

import functools
import os
import stat
from typing import BinaryIO, Protocol, Sequence, cast

from slimmer.errors import BlobError, InputError
from slimmer.oci.digest import VerifyingReader, check_digest, short
from slimmer.oci.image import Opener, Root
from slimmer.oci.loader import ImageLoader
from slimmer.oci.media import ANNOT_REF_NAME
from slimmer.oci.model import Descriptor, Platform, load_json
from slimmer.oci.refs import ArchiveRef, LayoutRef

#: Largest manifest, index or config accepted; a larger descriptor size is refused before reading.
SMALL_BLOB_LIMIT = 4 << 20
#: Largest ``index.json`` accepted (it lists every tag of the layout, so it may be bigger).
INDEX_JSON_LIMIT = 64 << 20

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class LayoutFiles(Protocol):
    """The files of a layout, by ``/``-separated name relative to its root."""

    def read(self, name: str, limit: int, what: str) -> bytes:
        """The whole file (InputError when missing or over ``limit`` bytes)."""
        ...

    def open(self, name: str, size: int, what: str) -> BinaryIO:
        """A fresh stream of the file; BlobError when it is missing, not a regular file, or
        its size is not ``size`` (checked before reading)."""
        ...

    def size(self, name: str) -> int | None:
        """The file's size, None when there is no such regular file."""
        ...


class DirectoryFiles:
    """``LayoutFiles`` of a directory on disk."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("/"))

    def read(self, name: str, limit: int, what: str) -> bytes:
        try:
            with open(self._path(name), "rb") as fh:
                data = fh.read(limit + 1)
        except FileNotFoundError as exc:
            raise InputError(f"{what}: missing (not an OCI image layout?)") from exc
        except OSError as exc:
            raise InputError(f"{what}: {exc.strerror or exc}") from exc
        if len(data) > limit:
            raise InputError(f"{what}: larger than {limit} bytes")
        return data

    def open(self, name: str, size: int, what: str) -> BinaryIO:
        try:
            fd = os.open(self._path(name), _OPEN_FLAGS)
        except FileNotFoundError as exc:
            raise BlobError(f"{what}: missing") from exc
        except OSError as exc:
            raise BlobError(f"{what}: {exc.strerror or exc}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise BlobError(f"{what}: not a regular file")
            if info.st_size != size:
                raise BlobError(f"{what}: blob is {info.st_size} bytes, descriptor says {size}")
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def size(self, name: str) -> int | None:
        try:
            info = os.stat(self._path(name))
        except OSError:
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None


class LayoutSource:
    """A ``Source`` for an OCI image layout, selecting by tag, digest or the single entry.

    ``files`` serves layouts that are not directories: an ``oci-archive`` (then ``ref`` is
    its ArchiveRef, which selects the same way)."""

    def __init__(self, ref: LayoutRef | ArchiveRef, files: LayoutFiles | None = None) -> None:
        self.ref = ref
        self.name = str(ref)
        prefix = "oci" if isinstance(ref, LayoutRef) else ref.kind.value
        self._label = f"{prefix}:{ref.path}"
        self._files = files or DirectoryFiles(ref.path)
        self._directory = files is None

    def pinned(self, digest: str) -> str:
        """``oci:DIR@DIGEST`` (``oci-archive:FILE@DIGEST``): this layout pinned to a digest."""
        return self.ref.pinned(digest)

    # -- blobs --------------------------------------------------------------------------------

    def _blob_name(self, digest: str, what: str) -> str:
        """Name of a blob; the strict digest form means it cannot leave ``blobs/``."""
        check_digest(digest, what)
        algorithm, hexpart = digest.split(":", 1)
        return f"blobs/{algorithm}/{hexpart}"

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        """A fresh stream of the blob that checks size and digest at EOF (BlobError on mismatch).

        A blob whose file size already differs from the descriptor is refused at open time.
        """
        what = f"reading {self._label} blob {short(descriptor.digest)}"
        raw = self._files.open(self._blob_name(descriptor.digest, what), descriptor.size, what)
        return cast(BinaryIO, VerifyingReader(raw, descriptor.digest, descriptor.size, what))

    def read_small_blob(self, descriptor: Descriptor, limit: int = SMALL_BLOB_LIMIT) -> bytes:
        """Whole verified content of a manifest/index/config blob of at most ``limit`` bytes.

        The limit is checked against the descriptor before reading, so a hostile size cannot make
        us allocate more than ``limit`` bytes.
        """
        if descriptor.size > limit:
            raise InputError(
                f"reading {self._label} blob {short(descriptor.digest)}: size {descriptor.size} "
                f"exceeds the {limit}-byte limit for manifests and configs")
        with self.open_blob(descriptor) as stream:
            return stream.read()

    # -- layout files -------------------------------------------------------------------------

    def _read_file(self, filename: str, limit: int) -> bytes:
        return self._files.read(filename, limit, f"reading {self._label} {filename}")

    def _check_oci_layout(self) -> None:
        what = f"reading {self._label} oci-layout"
        doc = load_json(self._read_file("oci-layout", 4096), what)
        version = doc.get("imageLayoutVersion")
        if not isinstance(version, str):
            raise InputError(f"{what}: missing field 'imageLayoutVersion'")
        if version.split(".")[0] != "1":
            raise InputError(f"{what}: unsupported imageLayoutVersion {version!r}")

    def _read_index_json(self) -> tuple[Descriptor, ...]:
        """Entries of ``index.json``; a missing ``mediaType`` (old layouts) is left empty."""
        what = f"reading {self._label} index.json"
        doc = load_json(self._read_file("index.json", INDEX_JSON_LIMIT), what)
        if doc.get("schemaVersion") != 2:
            raise InputError(f"{what}: schemaVersion must be 2")
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise InputError(f"{what}: missing field 'manifests'")
        out = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and "mediaType" not in entry:
                entry = {**entry, "mediaType": ""}
            out.append(Descriptor.from_json(entry, f"{what} entry {i}"))
        return tuple(out)

    # -- selection ----------------------------------------------------------------------------

    @staticmethod
    def _tag_of(descriptor: Descriptor) -> str | None:
        return (descriptor.annotations or {}).get(ANNOT_REF_NAME)

    def _describe_tags(self, entries: Sequence[Descriptor]) -> str:
        tags = list(dict.fromkeys(t for t in map(self._tag_of, entries) if t is not None))
        untagged = sum(1 for e in entries if self._tag_of(e) is None)
        text = ", ".join(tags) if tags else "none"
        return text + (f"; {untagged} untagged" if untagged else "")

    def _select(self, entries: tuple[Descriptor, ...]) -> Descriptor:
        if self.ref.tag is not None:
            found = [e for e in entries if self._tag_of(e) == self.ref.tag]
            if not found:
                raise InputError(f"reading {self._label}: unknown tag {self.ref.tag!r} "
                                 f"(available tags: {self._describe_tags(entries)})")
            if len({e.digest for e in found}) > 1:
                raise InputError(f"reading {self._label}: tag {self.ref.tag!r} names "
                                 f"{len(found)} different entries; select one by @DIGEST")
            return found[0]
        if self.ref.digest is not None:
            for entry in entries:
                if entry.digest == self.ref.digest:
                    return entry
            return self._unlisted(self.ref.digest)
        if len(entries) == 1:
            return entries[0]
        if not entries:
            raise InputError(f"reading {self._label}: index.json lists no images")
        raise InputError(f"reading {self._label}: index.json lists {len(entries)} images; "
                         f"add :TAG or @DIGEST (tags: {self._describe_tags(entries)})")

    def _unlisted(self, digest: str) -> Descriptor:
        """Descriptor of a manifest/index blob that is present but not listed in index.json."""
        what = f"reading {self._label}"
        size = self._files.size(self._blob_name(digest, what))
        if size is None:
            raise InputError(f"{what}: {short(digest)} is neither listed in index.json nor "
                             f"present in blobs/")
        # The size comes from the file; the digest check at EOF still guards the content.
        return Descriptor("", digest, size)

    # -- documents and resolve -----------------------------------------------------------

    def document(self, descriptor: Descriptor, kind: str) -> bytes:
        """Exact verified bytes of a manifest, index or config (``DocumentStore``)."""
        return self.read_small_blob(descriptor)

    def opener(self, descriptor: Descriptor) -> Opener:
        """A re-openable verified stream of a layer blob (``DocumentStore``)."""
        return functools.partial(self.open_blob, descriptor)

    def resolve(self, platforms: Sequence[Platform] = ()) -> Root:
        """Resolve the reference to one image, or an index narrowed to ``platforms``."""
        if self._directory and not os.path.isdir(self.ref.path):
            raise InputError(f"reading {self._label}: no such directory")
        self._check_oci_layout()
        descriptor = self._select(self._read_index_json())
        return ImageLoader(self.name, self, label=self._label).resolve(descriptor, platforms)


class StagedLayoutSource(LayoutSource):
    """The blobs a ``LayoutSink`` has stored under ``path`` (its temp directory or the layout
    itself), resolved to ``descriptor`` without ``index.json``: the result before its tag."""

    def __init__(self, path: str, descriptor: Descriptor, name: str) -> None:
        super().__init__(LayoutRef(path, None, descriptor.digest))
        self.name = name
        self._descriptor = descriptor

    def resolve(self, platforms: Sequence[Platform] = ()) -> Root:
        return ImageLoader(self.name, self, label=self._label).resolve(self._descriptor,
                                                                       platforms)

    def close(self) -> None:
        """Nothing to release: blobs are opened per read."""
