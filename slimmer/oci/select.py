"""Platform selection inside an index, shared by every source: which entries are images,
which are skipped (other platforms, attestations), following one level of nested indexes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from slimmer.errors import InputError
from slimmer.oci.digest import short
from slimmer.oci.image import Image, Root
from slimmer.oci.media import INDEX_TYPES, MANIFEST_TYPES
from slimmer.oci.model import Descriptor, Index, Platform

#: Annotation Docker BuildKit puts on attestation manifests inside an index.
ANNOT_DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"


@dataclass
class _Entry:
    """An index entry met while walking an index; ``image`` is set once loaded."""

    descriptor: Descriptor
    platform: Platform | None = None
    image: Image | None = None
    candidate: bool = False


@dataclass(frozen=True)
class Loaders:
    """How a source completes a descriptor's media type and loads indexes and images."""

    with_media_type: Callable[[Descriptor], Descriptor]
    load_index: Callable[[Descriptor], Index]
    load_image: Callable[[Descriptor], Image]


def _walk(index: Index, nested: bool, load: Loaders, out: list[_Entry]) -> None:
    """Classify index entries in order; follows one level of nested indexes."""
    for descriptor in index.manifests:
        descriptor = load.with_media_type(descriptor)
        entry = _Entry(descriptor, descriptor.platform)
        if descriptor.media_type in INDEX_TYPES and not nested:
            _walk(load.load_index(descriptor), True, load, out)
            continue
        out.append(entry)
        annotations = descriptor.annotations or {}
        if (descriptor.media_type not in MANIFEST_TYPES
                or ANNOT_DOCKER_REFERENCE_TYPE in annotations):
            continue
        if entry.platform is None:
            entry.image = load.load_image(descriptor)
            entry.platform = entry.image.platform
        plat = entry.platform
        if plat is None or (plat.os, plat.architecture) == ("unknown", "unknown"):
            continue
        entry.candidate = True


def resolve_index(name: str, descriptor: Descriptor, load: Loaders,
                  platforms: Sequence[Platform]) -> Root:
    """Root of an index narrowed to ``platforms`` (empty: every image with a platform)."""
    index = load.load_index(descriptor)
    entries: list[_Entry] = []
    _walk(index, False, load, entries)
    candidates = [e for e in entries if e.candidate]
    if platforms:
        chosen = [e for e in candidates
                  if e.platform is not None and any(e.platform.matches(w) for w in platforms)]
        if not chosen:
            available = ", ".join(dict.fromkeys(str(e.platform) for e in candidates))
            wanted = ", ".join(str(p) for p in platforms)
            raise InputError(f"reading {name}: no image for platform {wanted} "
                             f"(available: {available or 'none'})")
    else:
        chosen = candidates
    if not chosen:
        raise InputError(f"reading {name}: index {short(descriptor.digest)} has no "
                         f"image with a platform ({len(entries)} entries skipped)")
    images: list[Image] = []
    seen: set[str] = set()
    skipped: list[Descriptor] = []
    chosen_ids = {id(e) for e in chosen}
    for entry in entries:
        if id(entry) in chosen_ids and entry.descriptor.digest not in seen:
            seen.add(entry.descriptor.digest)
            images.append(entry.image or load.load_image(entry.descriptor))
        else:
            skipped.append(entry.descriptor)
    return Root(name, descriptor, index, tuple(images), tuple(skipped))
