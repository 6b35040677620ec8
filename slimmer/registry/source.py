"""Read an image from a registry: manifest or index by tag or digest (exact bytes, digest
checked), configs verified, layers as openers that stream from the registry on every call."""

from __future__ import annotations

import functools
from typing import BinaryIO, Callable, Sequence, cast

from ..digest import VerifyingReader, short
from ..errors import BlobError, InputError
from ..image import BlobOrigin, Image, Layer, Opener, Root
from ..model import (INDEX_TYPES, MANIFEST_TYPES, Descriptor, ImageConfig, Index, Manifest,
                     Platform, sniff_media_type)
from ..refs import RegistryRef
from ..sources.select import Loaders, resolve_index
from .auth import repository_scope
from .blobstream import ResumingBlobStream
from .client import RegistryClient
from .options import RegistryOptions

#: Largest config blob accepted (a larger descriptor size is refused before reading).
SMALL_BLOB_LIMIT = 4 << 20
#: Content types that say nothing about the document; the JSON decides then.
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


class RegistrySource:
    """A ``Source`` for ``HOST/REPO:TAG`` or ``@DIGEST``; asks for ``pull`` only."""

    def __init__(self, ref: RegistryRef, options: RegistryOptions | None = None,
                 client: RegistryClient | None = None) -> None:
        self.ref = ref
        self.name = str(ref)
        self.options = options or RegistryOptions()
        self.client = client or RegistryClient.for_ref(ref, self.options, "source")
        self.scopes = frozenset({repository_scope(ref.repository, "pull")})
        self.origin = BlobOrigin(ref.registry, ref.repository)

    def close(self) -> None:
        """Close the connections; openers handed out stop working."""
        self.client.close()

    # -- blobs --------------------------------------------------------------------------------

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        """A fresh stream of the blob, resumed on dropped connections, verified at EOF."""
        what = f"reading {self.name} blob {short(descriptor.digest)}"
        raw = ResumingBlobStream(self.client, self.ref.repository, descriptor.digest,
                                 descriptor.size, self.scopes, what)
        return cast(BinaryIO, VerifyingReader(cast(BinaryIO, raw), descriptor.digest,
                                              descriptor.size, what))

    def read_small_blob(self, descriptor: Descriptor, what: str,
                        limit: int = SMALL_BLOB_LIMIT) -> bytes:
        """Whole verified content of a config blob of at most ``limit`` bytes (the descriptor
        size is checked first, and the stream refuses to run past it)."""
        if descriptor.size > limit:
            raise InputError(f"{what}: size {descriptor.size} exceeds the {limit}-byte limit "
                             f"for configs")
        with self.open_blob(descriptor) as stream:
            return stream.read()

    def _opener(self, descriptor: Descriptor) -> Opener:
        return functools.partial(self.open_blob, descriptor)

    # -- documents ----------------------------------------------------------------------------

    def _fetch(self, reference: str, what: str) -> tuple[bytes, Descriptor]:
        raw, media_type, digest = self.client.get_manifest(self.ref.repository, reference,
                                                           self.scopes, what)
        if media_type in _GENERIC_TYPES:
            media_type = sniff_media_type(raw, what)
        if media_type not in MANIFEST_TYPES and media_type not in INDEX_TYPES:
            raise InputError(f"{what}: unsupported media type {media_type!r}, expected an "
                             f"image manifest or index")
        return raw, Descriptor(media_type, digest, len(raw))

    def _with_media_type(self, descriptor: Descriptor) -> Descriptor:
        if descriptor.media_type:
            return descriptor
        what = f"reading {self.name} manifest {short(descriptor.digest)}"
        return self._fetch(descriptor.digest, what)[1]

    def _document(self, descriptor: Descriptor, kind: str) -> tuple[bytes, str]:
        what = f"reading {self.name} {kind} {short(descriptor.digest)}"
        raw, got = self._fetch(descriptor.digest, what)
        if got.size != descriptor.size:
            raise BlobError(f"{what}: {got.size} bytes, descriptor says {descriptor.size}")
        return raw, what

    def _load_index(self, descriptor: Descriptor) -> Index:
        raw, what = self._document(descriptor, "index")
        return Index.parse(raw, descriptor.media_type or None, what)

    def _load_image(self, descriptor: Descriptor, raw: bytes | None = None) -> Image:
        if raw is None:
            raw, what = self._document(descriptor, "manifest")
        else:
            what = f"reading {self.name} manifest {short(descriptor.digest)}"
        manifest = Manifest.parse(raw, descriptor.media_type or None, what)
        cfg_what = f"reading {self.name} config {short(manifest.config.digest)}"
        config = ImageConfig.parse(self.read_small_blob(manifest.config, cfg_what), cfg_what)
        if len(config.diff_ids) != len(manifest.layers):
            raise InputError(f"{what}: config {short(manifest.config.digest)} has "
                             f"{len(config.diff_ids)} diff_ids but manifest has "
                             f"{len(manifest.layers)} layers")
        layers = tuple(Layer(d, diff_id, self._opener(d), self.origin)
                       for d, diff_id in zip(manifest.layers, config.diff_ids))
        return Image(descriptor, manifest, config, layers)

    # -- resolve ------------------------------------------------------------------------------

    def resolve(self, platforms: Sequence[Platform] = ()) -> Root:
        """Resolve the tag or digest to one image, or an index narrowed to ``platforms``."""
        raw, descriptor = self._fetch(self.ref.reference, f"reading {self.name} manifest")
        if descriptor.media_type in MANIFEST_TYPES:
            return Root(self.name, descriptor, None, (self._load_image(descriptor, raw),))
        loaders = Loaders(self._with_media_type, self._index_loader(descriptor, raw),
                          self._load_image)
        return resolve_index(self.name, descriptor, loaders, tuple(platforms))

    def _index_loader(self, top: Descriptor, raw: bytes) -> Callable[[Descriptor], Index]:
        """Index loader that reuses the bytes already fetched for the top-level index."""
        def load(descriptor: Descriptor) -> Index:
            if descriptor.digest == top.digest:
                what = f"reading {self.name} index {short(top.digest)}"
                return Index.parse(raw, top.media_type, what)
            return self._load_index(descriptor)
        return load
