"""Read an image from a registry: manifest or index by tag or digest (exact bytes, digest
checked), configs verified, layers as openers that stream from the registry on every call."""

from __future__ import annotations

import functools
from typing import BinaryIO, Sequence

from slimmer.errors import BlobError, InputError
from slimmer.oci.digest import short
from slimmer.oci.image import BlobOrigin, Opener, Root
from slimmer.oci.loader import ImageLoader
from slimmer.oci.media import INDEX_TYPES, MANIFEST_TYPES
from slimmer.oci.model import Descriptor, Platform
from slimmer.oci.refs import RegistryRef
from slimmer.transports.registry.options import RegistryOptions
from slimmer.transports.registry.repository import Repository

#: Largest config blob accepted (a larger descriptor size is refused before reading).
SMALL_BLOB_LIMIT = 4 << 20


class RegistrySource:
    """A ``Source`` for ``HOST/REPO:TAG`` or ``@DIGEST``; asks for ``pull`` only."""

    def __init__(self, ref: RegistryRef, options: RegistryOptions | None = None,
                 repository: Repository | None = None) -> None:
        self.ref = ref
        self.name = str(ref)
        self.options = options or RegistryOptions()
        self.repository = repository or Repository.open(ref, self.options, "source")
        self.origin = BlobOrigin(ref.registry, ref.repository)

    def close(self) -> None:
        """Close the connections; openers handed out stop working."""
        self.repository.close()

    def pinned(self, digest: str) -> str:
        """``HOST/REPO@DIGEST``: this source pinned to a digest."""
        return f"{self.ref.name}@{digest}"

    # -- blobs --------------------------------------------------------------------------------

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        """A fresh stream of the blob, resumed on dropped connections, verified at EOF."""
        what = f"reading {self.name} blob {short(descriptor.digest)}"
        return self.repository.open_blob(descriptor.digest, descriptor.size, what)

    def opener(self, descriptor: Descriptor) -> Opener:
        """A re-openable verified stream of a layer blob (``DocumentStore``)."""
        return functools.partial(self.open_blob, descriptor)

    # -- documents ----------------------------------------------------------------------------

    def _fetch(self, reference: str, what: str) -> tuple[bytes, Descriptor]:
        raw, descriptor = self.repository.describe(reference, what)
        if descriptor.media_type not in MANIFEST_TYPES and descriptor.media_type not in INDEX_TYPES:
            raise InputError(f"{what}: unsupported media type {descriptor.media_type!r}, "
                             f"expected an image manifest or index")
        return raw, descriptor

    def document(self, descriptor: Descriptor, kind: str) -> bytes:
        """Exact verified bytes of a manifest or index (manifests endpoint) or of a config
        (blobs endpoint, at most SMALL_BLOB_LIMIT bytes); ``DocumentStore``."""
        what = f"reading {self.name} {kind} {short(descriptor.digest)}"
        if kind == "config":
            if descriptor.size > SMALL_BLOB_LIMIT:
                raise InputError(f"{what}: size {descriptor.size} exceeds the "
                                 f"{SMALL_BLOB_LIMIT}-byte limit for configs")
            with self.open_blob(descriptor) as stream:
                return stream.read()
        raw, got = self._fetch(descriptor.digest, what)
        if got.size != descriptor.size:
            raise BlobError(f"{what}: {got.size} bytes, descriptor says {descriptor.size}")
        return raw

    # -- resolve ------------------------------------------------------------------------------

    def resolve(self, platforms: Sequence[Platform] = ()) -> Root:
        """Resolve the tag or digest to one image, or an index narrowed to ``platforms``."""
        raw, descriptor = self._fetch(self.ref.reference, f"reading {self.name} manifest")
        loader = ImageLoader(self.name, self, self.origin)
        return loader.resolve(descriptor, platforms, raw)
