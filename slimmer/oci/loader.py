"""One image loader for every source: from a small core a transport provides (exact document
bytes, a blob opener) to the full ``Root`` (manifests, configs, layers, the index narrowed to
the wanted platforms). Like go-containerregistry's ``partial``: each transport implements the
few things only it can do, and the rest is derived here once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, Sequence, runtime_checkable

from slimmer.errors import InputError
from slimmer.oci.digest import short
from slimmer.oci.image import BlobOrigin, Image, Layer, Opener, Root
from slimmer.oci.media import INDEX_TYPES, MANIFEST_TYPES
from slimmer.oci.model import Descriptor, ImageConfig, Index, Manifest, Platform, sniff_media_type

#: Annotation Docker BuildKit puts on attestation manifests inside an index.
ANNOT_DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"


class DocumentStore(Protocol):
    """What a transport gives the loader. Every method checks digest and size."""

    def document(self, descriptor: Descriptor, kind: str) -> bytes:
        """Exact bytes of a manifest, index or config (``kind`` names it in messages)."""
        ...

    def opener(self, descriptor: Descriptor) -> Opener:
        """A re-openable, digest-verifying stream of a layer blob."""
        ...


@runtime_checkable
class PartialStore(Protocol):
    """A store that may lack some documents an index names (an archive that ``docker save``
    wrote from one platform of a multi-platform image): entries it lacks are skipped."""

    def has_document(self, descriptor: Descriptor) -> bool: ...


class ImageLoader:
    """Builds images and indexes of one source from its ``DocumentStore``."""

    def __init__(self, name: str, store: DocumentStore, origin: BlobOrigin | None = None,
                 label: str | None = None) -> None:
        """``name``: the reference the Root carries; ``label``: how messages name the source
        (default: ``name``)."""
        self.name = name
        self.label = label or name
        self.store = store
        self.origin = origin

    def with_media_type(self, descriptor: Descriptor) -> Descriptor:
        """The descriptor with its media type, read from the document when it has none."""
        if descriptor.media_type:
            return descriptor
        what = f"reading {self.label} blob {short(descriptor.digest)}"
        media_type = sniff_media_type(self.store.document(descriptor, "manifest"), what)
        return replace(descriptor, media_type=media_type)

    def index(self, descriptor: Descriptor, raw: bytes | None = None) -> Index:
        what = f"reading {self.label} index {short(descriptor.digest)}"
        raw = self.store.document(descriptor, "index") if raw is None else raw
        return Index.parse(raw, descriptor.media_type or None, what)

    def image(self, descriptor: Descriptor, raw: bytes | None = None) -> Image:
        """The image a manifest descriptor names: manifest, config and layer openers."""
        what = f"reading {self.label} manifest {short(descriptor.digest)}"
        raw = self.store.document(descriptor, "manifest") if raw is None else raw
        manifest = Manifest.parse(raw, descriptor.media_type or None, what)
        cfg_what = f"reading {self.label} config {short(manifest.config.digest)}"
        config = ImageConfig.parse(self.store.document(manifest.config, "config"), cfg_what)
        if len(config.diff_ids) != len(manifest.layers):
            raise InputError(f"{what}: config {short(manifest.config.digest)} has "
                             f"{len(config.diff_ids)} diff_ids but manifest has "
                             f"{len(manifest.layers)} layers")
        layers = tuple(Layer(d, diff_id, self.store.opener(d), self.origin)
                       for d, diff_id in zip(manifest.layers, config.diff_ids))
        return Image(descriptor, manifest, config, layers)

    def resolve(self, descriptor: Descriptor, platforms: Sequence[Platform] = (),
                raw: bytes | None = None) -> Root:
        """The Root a top-level descriptor names: one image, or an index narrowed to
        ``platforms`` (empty: every image with a platform). ``raw``: its bytes, if read."""
        descriptor = self.with_media_type(descriptor)
        if descriptor.media_type in MANIFEST_TYPES:
            return Root(self.name, descriptor, None, (self.image(descriptor, raw),))
        if descriptor.media_type in INDEX_TYPES:
            return self._resolve_index(descriptor, tuple(platforms), raw)
        raise InputError(f"reading {self.label} {short(descriptor.digest)}: unsupported media "
                         f"type {descriptor.media_type!r}, expected an image manifest or index")

    # -- indexes ----------------------------------------------------------------------------

    def _resolve_index(self, descriptor: Descriptor, platforms: tuple[Platform, ...],
                       raw: bytes | None) -> Root:
        index = self.index(descriptor, raw)
        entries: list[_Entry] = []
        self._walk(index, False, entries)
        candidates = [e for e in entries if e.candidate]
        if platforms:
            chosen = [e for e in candidates
                      if e.platform is not None and any(e.platform.matches(w) for w in platforms)]
            if not chosen:
                available = ", ".join(dict.fromkeys(str(e.platform) for e in candidates))
                wanted = ", ".join(str(p) for p in platforms)
                raise InputError(f"reading {self.name}: no image for platform {wanted} "
                                 f"(available: {available or 'none'})")
        else:
            chosen = candidates
        if not chosen:
            raise InputError(f"reading {self.name}: index {short(descriptor.digest)} has no "
                             f"image with a platform ({len(entries)} entries skipped)")
        images: list[Image] = []
        seen: set[str] = set()
        skipped: list[Descriptor] = []
        chosen_ids = {id(e) for e in chosen}
        for entry in entries:
            if id(entry) in chosen_ids and entry.descriptor.digest not in seen:
                seen.add(entry.descriptor.digest)
                images.append(entry.image or self.image(entry.descriptor))
            else:
                skipped.append(entry.descriptor)
        return Root(self.name, descriptor, index, tuple(images), tuple(skipped))

    def _walk(self, index: Index, nested: bool, out: list[_Entry]) -> None:
        """Classify index entries in order; follows one level of nested indexes. Entries
        that are not images (attestations, unknown platforms) are never candidates."""
        partial = isinstance(self.store, PartialStore)
        for descriptor in index.manifests:
            if partial and not self.store.has_document(descriptor):  # type: ignore[attr-defined]
                out.append(_Entry(descriptor, descriptor.platform))
                continue
            descriptor = self.with_media_type(descriptor)
            entry = _Entry(descriptor, descriptor.platform)
            if descriptor.media_type in INDEX_TYPES and not nested:
                self._walk(self.index(descriptor), True, out)
                continue
            out.append(entry)
            annotations = descriptor.annotations or {}
            if (descriptor.media_type not in MANIFEST_TYPES
                    or ANNOT_DOCKER_REFERENCE_TYPE in annotations):
                continue
            if entry.platform is None:
                entry.image = self.image(descriptor)
                entry.platform = entry.image.platform
            plat = entry.platform
            if plat is None or (plat.os, plat.architecture) == ("unknown", "unknown"):
                continue
            entry.candidate = True


@dataclass
class _Entry:
    """An index entry met while walking an index; ``image`` is set once loaded."""

    descriptor: Descriptor
    platform: Platform | None = None
    image: Image | None = None
    candidate: bool = False
