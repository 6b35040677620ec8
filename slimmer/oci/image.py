"""Source-side image objects and the Source / Sink interfaces every front and backend shares.

A layer holds an *opener*, not an open file: each call returns a fresh, digest-verifying stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO, Callable, Protocol, Sequence, runtime_checkable

from slimmer.oci.model import Descriptor, ImageConfig, Index, Manifest, Platform

Opener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class Layer:
    """One input layer: its descriptor, its diff_id from the config and a re-openable stream."""

    descriptor: Descriptor
    diff_id: str
    open_compressed: Opener
    origin: "BlobOrigin | None" = None


@dataclass(frozen=True)
class BlobOrigin:
    """Where a source blob lives in a registry, so a sink on the same registry can mount it."""

    registry: str
    repository: str


@dataclass(frozen=True)
class Image:
    """One platform image: manifest, config and layers, plus the descriptor it was reached by."""

    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig
    layers: tuple[Layer, ...]

    @property
    def platform(self) -> Platform | None:
        return self.descriptor.platform or self.config.platform


@dataclass(frozen=True)
class Root:
    """What a reference resolved to: a single image, or an index and its selected images.

    ``skipped`` lists index entries that were not selected or are not images (attestations).
    """

    name: str
    descriptor: Descriptor
    index: Index | None
    images: tuple[Image, ...]
    skipped: tuple[Descriptor, ...] = ()


class Source(Protocol):
    """Reads an image; every blob stream it hands out is verified against its digest at EOF."""

    name: str

    def resolve(self, platforms: Sequence[Platform] = ()) -> Root:
        """Resolve the reference; ``platforms`` narrows an index (empty: all platforms)."""
        ...

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        """A fresh verified stream of the blob's stored (compressed) bytes."""
        ...


@runtime_checkable
class Pinnable(Protocol):
    """A source that can name itself pinned to a digest (``HOST/REPO@DIGEST``,
    ``oci:DIR@DIGEST``), as signatures record their source."""

    def pinned(self, digest: str) -> str: ...


class BlobWriter(Protocol):
    """A blob being written whose digest is known only at the end of the stream."""

    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self, digest: str, size: int) -> None:
        """Make the blob visible under ``digest``; raise OutputError on failure."""
        ...

    def abort(self) -> None:
        """Discard what was written; safe to call after commit or twice."""
        ...


@runtime_checkable
class Flushable(Protocol):
    """A blob writer that buffers: ``flush`` sends what it holds, so a writer left open for a
    while (a speculative build waiting for the plan) holds no memory."""

    def flush(self) -> None: ...


COPY_CHUNK = 1 << 20


def copy_into(writer: BlobWriter, opener: Opener, digest: str, size: int) -> None:
    """Stream a source blob into ``writer`` in chunks and commit it; abort on any failure."""
    try:
        with opener() as stream:
            while True:
                chunk = stream.read(COPY_CHUNK)
                if not chunk:
                    break
                writer.write(chunk)
        writer.commit(digest, size)
    except BaseException:
        writer.abort()
        raise


class Sink(Protocol):
    """Writes an image: blobs first, then manifests, and the tag / index entry last.

    Nothing is visible under the destination reference until ``commit``; ``abort`` removes what
    this sink added so a failed run leaves the destination as it was.
    """

    name: str

    def has_blob(self, digest: str) -> bool: ...

    def copy_blob(self, descriptor: Descriptor, opener: Opener,
                  origin: BlobOrigin | None = None) -> None:
        """Store a blob byte-identical from a (verified) source stream, unless already present;
        a registry sink mounts it from ``origin`` instead of uploading when it can."""
        ...

    def blob_writer(self, *, verified: bool = False) -> BlobWriter:
        """A writer for one blob. ``verified``: the caller hashes exactly what it writes and
        commits under that digest, so the sink need not hash it again."""
        ...

    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        """Store exact manifest/index/config bytes; returns their descriptor."""
        ...

    def commit(self, descriptor: Descriptor) -> None:
        """Point the destination reference (tag) at ``descriptor``; the last step of a push."""
        ...

    def abort(self) -> None: ...


@runtime_checkable
class ReadsCurrent(Protocol):
    """A sink that can say what its destination reference points at now (manifest or index
    bytes, None when nothing), so ``slim`` can skip a push whose result is already there."""

    def current(self) -> bytes | None: ...


class StagedSource(Source, Protocol):
    """A Source over what a sink has stored but not yet tagged; the caller closes it."""

    def close(self) -> None: ...


@runtime_checkable
class Stages(Protocol):
    """A sink that can hand out what it has stored before ``commit`` as a ``Source`` resolving
    to ``descriptor``, so a result can be run (``slim push --smoke``) before it is tagged."""

    def staged(self, descriptor: Descriptor) -> StagedSource: ...
class BlobReuse(StrEnum):
    """What a sink found when asked to make a known blob present without its bytes."""

    PRESENT = "present"       # the destination has it, with the expected size
    MOUNTED = "mounted"       # mounted from another repository of the same registry
    MISSING = "missing"       # neither: the bytes must be written
    MISMATCH = "mismatch"     # the destination has it with another size: whoever said it
                              # was this blob was wrong


@runtime_checkable
class ReusesBlobs(Protocol):
    """A sink that can place a blob whose digest and size are known (a layer cache hit)
    without its bytes, and say where its blobs live so later runs can mount them."""

    def reuse_blob(self, digest: str, size: int, origins: tuple[BlobOrigin, ...] = ()
                   ) -> BlobReuse:
        """HEAD the destination; when missing, try a mount from each of ``origins`` on the
        destination's registry, in order."""
        ...

    def blob_origin(self) -> BlobOrigin | None:
        """Where blobs written to this sink can be mounted from later (None: no registry)."""
        ...


@runtime_checkable
class FormatLimits(Protocol):
    """A sink whose format limits what it holds (a docker archive: one image, layers that
    ``docker load`` reads)."""

    def output_compression(self, requested: str, images: int) -> str:
        """The ``--compression`` to use instead of ``requested`` for ``images`` platform
        images; UsageError when the destination cannot hold them."""
        ...
