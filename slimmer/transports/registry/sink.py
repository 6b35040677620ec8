"""Push an image to a registry: blobs first (HEAD skip, cross-repo mount, streamed upload), then
manifests by digest, and the tag last in ``commit``; ``abort`` cancels open uploads."""

from __future__ import annotations

import threading

from slimmer.errors import NotFoundError, OutputError, UsageError
from slimmer.oci.digest import sha256_digest, short
from slimmer.oci.image import BlobOrigin, BlobReuse, BlobWriter, Opener, StagedSource, copy_into
from slimmer.oci.media import INDEX_TYPES, MANIFEST_TYPES
from slimmer.oci.model import Descriptor
from slimmer.oci.refs import RegistryRef, canonical_registry
from slimmer.transports.registry.options import RegistryOptions
from slimmer.transports.registry.repository import Repository
from slimmer.transports.registry.upload import RegistryBlobWriter


class RegistrySink:
    """A ``Sink`` for ``HOST/REPO:TAG``; nothing is tagged unless ``commit`` succeeds.

    Blobs and manifests pushed before a failure stay in the registry untagged (its garbage
    collector removes them); nothing is ever deleted from the destination repository.
    """

    def __init__(self, ref: RegistryRef, options: RegistryOptions | None = None,
                 repository: Repository | None = None) -> None:
        if ref.digest:
            raise UsageError(f"destination {ref} cannot name a digest")
        self.ref = ref
        self.name = str(ref)
        self.options = options or RegistryOptions()
        self.repository = repository or Repository.open(ref, self.options, "dest", push=True)
        self._manifests: dict[str, tuple[bytes, str]] = {}
        self._writers: set[RegistryBlobWriter] = set()
        self._lock = threading.Lock()
        self._state = "open"

    def current(self) -> bytes | None:
        """The manifest or index bytes the destination tag points at now (None: no such tag)."""
        if not self.ref.tag:
            return None
        what = f"pushing {self.name}: reading the current tag"
        try:
            raw, _, _ = self.repository.get_manifest(self.ref.tag, what)
        except NotFoundError:
            return None
        return raw

    def _check_open(self) -> None:
        if self._state != "open":
            raise OutputError(f"pushing {self.name}: sink already {self._state}")

    # -- blobs --------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """True if the destination repository already has the blob (HEAD)."""
        what = f"pushing {self.name} blob {short(digest)}"
        return self.repository.blob_size(digest, what) is not None

    def blob_origin(self) -> BlobOrigin:
        """``ReusesBlobs``: blobs pushed here can be mounted from this repository later."""
        return BlobOrigin(self.ref.registry, self.ref.repository)

    def reuse_blob(self, digest: str, size: int, origins: tuple[BlobOrigin, ...] = ()
                   ) -> BlobReuse:
        """``ReusesBlobs``: HEAD the destination; when it lacks the blob, mount it from each
        origin on this registry in turn (one token for both repositories' scopes). A mount
        is checked with a HEAD: the registry knows the blob's size."""
        self._check_open()
        what = f"pushing {self.name} blob {short(digest)}"
        have = self.repository.blob_size(digest, what)
        if have is not None:
            return BlobReuse.PRESENT if have in (size, -1) else BlobReuse.MISMATCH
        here = canonical_registry(self.ref.registry)
        for origin in origins:
            if canonical_registry(origin.registry) != here or \
                    origin.repository == self.ref.repository:
                continue
            location = self.repository.mount(digest, origin.repository, what)
            if location is not None:
                self.repository.cancel(location, what)   # not there (202): try the next
                continue
            have = self.repository.blob_size(digest, what)
            if have is not None:
                return BlobReuse.MOUNTED if have in (size, -1) else BlobReuse.MISMATCH
        return BlobReuse.MISSING

    def blob_writer(self, *, verified: bool = False) -> BlobWriter:
        """A writer that uploads while the caller writes; one per thread (the registry checks
        the digest of what it receives, so ``verified`` changes nothing here)."""
        self._check_open()
        return self._new_writer(None)

    def _new_writer(self, location: str | None) -> RegistryBlobWriter:
        writer = RegistryBlobWriter(self.repository, f"pushing {self.name} blob",
                                    self.options.chunk_size, location, self._forget)
        with self._lock:
            self._writers.add(writer)
        return writer

    def _forget(self, writer: RegistryBlobWriter) -> None:
        with self._lock:
            self._writers.discard(writer)

    def copy_blob(self, descriptor: Descriptor, opener: Opener,
                  origin: BlobOrigin | None = None) -> None:
        """Skip a blob already here, mount it from ``origin`` on the same registry, else
        stream it from ``opener`` into a new upload."""
        self._check_open()
        digest = descriptor.digest
        what = f"pushing {self.name} blob {short(digest)}"
        size = self.repository.blob_size(digest, what)
        if size is not None:
            if size >= 0 and size != descriptor.size:
                raise OutputError(f"{what}: registry has it with {size} bytes, descriptor "
                                  f"says {descriptor.size}")
            return
        location = None
        if origin is not None and \
                canonical_registry(origin.registry) == canonical_registry(self.ref.registry) \
                and origin.repository != self.ref.repository:
            location = self.repository.mount(digest, origin.repository, what)
            if location is None:
                return
        copy_into(self._new_writer(location), opener, digest, descriptor.size)

    # -- manifests ----------------------------------------------------------------------------

    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        """Push a manifest or index by digest (exact bytes); anything else (a config) is
        uploaded as a blob. The bytes are kept for ``commit``."""
        self._check_open()
        digest = sha256_digest(raw)
        if media_type in MANIFEST_TYPES or media_type in INDEX_TYPES:
            what = f"pushing {self.name} manifest {short(digest)}"
            self.repository.put_manifest(digest, raw, media_type, what)
            with self._lock:
                self._manifests[digest] = (raw, media_type)
        elif not self.has_blob(digest):
            what = f"pushing {self.name} config {short(digest)}"
            self.repository.upload(digest, raw, len(raw), what)
        return Descriptor(media_type, digest, len(raw))

    def staged(self, descriptor: Descriptor) -> StagedSource:
        """The manifest pushed by digest, as a Source (with the destination's credentials),
        before ``commit`` tags it."""
        from slimmer.transports.registry.source import RegistrySource
        self._check_open()
        if descriptor.digest not in self._manifests:
            raise OutputError(f"pushing {self.name}: manifest {short(descriptor.digest)} was "
                              f"not pushed")
        ref = RegistryRef(self.ref.registry, self.ref.repository, None, descriptor.digest)
        source = RegistrySource(ref, self.options,
                                repository=Repository.open(ref, self.options, "dest"))
        source.name = self.name  # what it will be once tagged
        return source

    def commit(self, descriptor: Descriptor) -> None:
        """Tag: PUT the top manifest or index under the destination tag; the last step."""
        self._check_open()
        stored = self._manifests.get(descriptor.digest)
        if stored is None:
            raise OutputError(f"pushing {self.name}: manifest {short(descriptor.digest)} was "
                              f"not pushed before commit")
        raw, media_type = stored
        tag = self.ref.tag or "latest"
        self.repository.put_manifest(tag, raw, media_type, f"tagging {self.name}")
        self._state = "committed"
        self.repository.close()

    def abort(self) -> None:
        """Cancel every open upload; the tag was never written. Safe to call twice."""
        with self._lock:
            if self._state != "open":
                return
            self._state = "aborted"
            writers = list(self._writers)
        for writer in writers:
            writer.abort()
        self.repository.close()
