"""The ``manifest.json`` and ``repositories`` files of a docker archive: parsed and checked for
the source, written for the sink. ``manifest.json`` lists the archive's images, each with its
config file, its layer files (in order) and its ``RepoTags``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from slimmer.errors import InputError, UsageError
from slimmer.oci.model import dump_json
from slimmer.oci.refs import ArchiveRef, familiar_name, parse_registry_reference

MANIFEST_JSON = "manifest.json"
REPOSITORIES = "repositories"
#: Largest manifest.json accepted.
MANIFEST_JSON_LIMIT = 16 << 20


@dataclass(frozen=True)
class ArchivedImage:
    """One ``manifest.json`` entry: member names of the config and layers, and its tags."""

    config: str
    layers: tuple[str, ...]
    repo_tags: tuple[str, ...]

    def names(self) -> tuple[str, ...]:
        """The tags normalised (``busybox:1`` -> ``docker.io/library/busybox:1``); tags that
        are no valid reference are left out."""
        out = []
        for tag in self.repo_tags:
            try:
                out.append(str(parse_registry_reference(tag)))
            except UsageError:
                continue
        return tuple(out)


def parse_manifest_json(raw: bytes, what: str) -> list[ArchivedImage]:
    """The entries of ``manifest.json``; InputError naming what is wrong."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, list):
        raise InputError(f"{what}: not a list of images")
    images = []
    for i, entry in enumerate(doc):
        where = f"{what} entry {i}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: not an object")
        config = entry.get("Config")
        layers = entry.get("Layers")
        tags = entry.get("RepoTags") or []
        if not isinstance(config, str) or not config:
            raise InputError(f"{where}: missing field 'Config'")
        if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
            raise InputError(f"{where}: 'Layers' is not a list of file names")
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise InputError(f"{where}: 'RepoTags' is not a list of names")
        if entry.get("LayerSources"):
            raise InputError(f"{where}: foreign layers ('LayerSources') are not supported")
        images.append(ArchivedImage(config, tuple(layers), tuple(tags)))
    return images


def select_image(images: Sequence[ArchivedImage], ref: ArchiveRef, label: str) -> ArchivedImage:
    """The image ``ref`` names (``:NAME:TAG`` or ``:@N``), or the only one."""
    if ref.index is not None:
        if ref.index >= len(images):
            raise InputError(f"reading {label}: no image @{ref.index}, the archive holds "
                             f"{len(images)}")
        return images[ref.index]
    if ref.name is not None:
        found = [image for image in images if ref.name in image.names()]
        if not found:
            raise InputError(f"reading {label}: no image tagged {familiar_name(ref.name)} "
                             f"(tags: {_describe(images)})")
        return found[0]
    if len(images) == 1:
        return images[0]
    if not images:
        raise InputError(f"reading {label}: manifest.json lists no images")
    raise InputError(f"reading {label}: the archive holds {len(images)} images; add :NAME:TAG "
                     f"or :@N to choose one (tags: {_describe(images)})")


def _describe(images: Sequence[ArchivedImage]) -> str:
    tags = [t for image in images for t in image.repo_tags]
    untagged = sum(1 for image in images if not image.repo_tags)
    text = ", ".join(tags) if tags else "none"
    return text + (f"; {untagged} untagged" if untagged else "")


def manifest_json(config: str, layers: Sequence[str], name: str | None) -> bytes:
    """``manifest.json`` for one image (``docker load`` reads it; the tag as docker shows
    tags, ``busybox:1``)."""
    doc: list[dict[str, Any]] = [{"Config": config, "Layers": list(layers),
                                  "RepoTags": [familiar_name(name)] if name else None}]
    return dump_json(doc)


def repositories_json(name: str | None, top_layer: str) -> bytes | None:
    """The legacy ``repositories`` file: ``{repo: {tag: top layer id}}``; None without a name.
    ``docker load`` only reads it for archives without ``manifest.json``."""
    if not name:
        return None
    repo, _, tag = familiar_name(name).rpartition(":")
    return dump_json({repo: {tag: top_layer}})
