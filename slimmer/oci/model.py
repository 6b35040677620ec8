"""Frozen data model of OCI / Docker schema2 manifests, indexes and configs.

Each parsed document keeps its exact bytes (``raw``): digests are computed over bytes, never over a
re-serialisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from slimmer.errors import InputError, SlimmerError
from slimmer.oci.digest import check_digest, sha256_digest
from slimmer.oci.media import (
    CONFIG_TYPES,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)


def _need(obj: Mapping[str, Any], key: str, typ: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise InputError(f"{what}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise InputError(f"{what}: field {key!r} has the wrong type")
    return value


def _str_map(value: Any, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputError(f"{what}: annotations must map strings to strings")
    return dict(value)


def load_json(raw: bytes, what: str, error: type[SlimmerError] = InputError) -> dict[str, Any]:
    """Parse a JSON object, raising ``error`` (InputError) naming ``what`` on anything else."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise error(f"{what}: not a JSON object")
    return doc


def dump_json(doc: Any) -> bytes:
    """Canonical output serialisation: compact, sorted keys, UTF-8; deterministic by design."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Platform:
    """An image platform; ``str()`` gives ``os/arch[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, doc: Any, what: str) -> "Platform":
        os_ = _need(doc, "os", str, what)
        arch = _need(doc, "architecture", str, what)
        feats = doc.get("os.features") or ()
        return cls(os_, arch, doc.get("variant"), doc.get("os.version"), tuple(feats))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    def matches(self, want: "Platform") -> bool:
        """True if this platform satisfies ``want`` (a variant-less ``want`` accepts any variant)."""
        return (self.os == want.os and self.architecture == want.architecture
                and (want.variant is None or self.variant == want.variant))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor; ``extra`` keeps unknown fields (urls, artifactType, data) verbatim."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] | None = None
    platform: Platform | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Any, what: str) -> "Descriptor":
        if not isinstance(doc, Mapping):
            raise InputError(f"{what}: descriptor is not an object")
        media_type = _need(doc, "mediaType", str, what)
        digest = check_digest(_need(doc, "digest", str, what), what)
        size = _need(doc, "size", int, what)
        if size < 0:
            raise InputError(f"{what}: negative size")
        plat = doc.get("platform")
        platform = Platform.from_json(plat, what + " platform") if plat is not None else None
        extra = {k: v for k, v in doc.items()
                 if k not in ("mediaType", "digest", "size", "annotations", "platform")}
        return cls(media_type, digest, size, _str_map(doc.get("annotations"), what), platform,
                   extra)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        out.update(self.extra)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out


def _parse_document(raw: bytes, media_type: str | None, allowed: frozenset[str], default: str,
                    noun: str, what: str) -> tuple[dict[str, Any], str]:
    """Common checks of a manifest or index: JSON object, media type, schemaVersion 2."""
    doc = load_json(raw, what)
    declared = doc.get("mediaType")
    if media_type and declared and media_type != declared and media_type in allowed:
        raise InputError(f"{what}: mediaType {declared!r} differs from descriptor's {media_type!r}")
    mt = declared or media_type or default
    if mt not in allowed:
        raise InputError(f"{what}: unsupported {noun} media type {mt!r}")
    if doc.get("schemaVersion") != 2:
        raise InputError(f"{what}: schemaVersion must be 2")
    return doc, mt


@dataclass(frozen=True)
class Document:
    """A JSON document kept as the exact bytes it was read from (its digest is theirs)."""

    raw: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)


@dataclass(frozen=True)
class Manifest(Document):
    """An image manifest (OCI or Docker schema2) with its exact bytes."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] | None
    doc: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None, what: str) -> "Manifest":
        doc, mt = _parse_document(raw, media_type, MANIFEST_TYPES, OCI_MANIFEST, "manifest",
                                  what)
        config = Descriptor.from_json(_need(doc, "config", dict, what), what + " config")
        if config.media_type not in CONFIG_TYPES:
            raise InputError(f"{what}: unsupported config media type {config.media_type!r}")
        layers = tuple(Descriptor.from_json(d, f"{what} layer {i}")
                       for i, d in enumerate(_need(doc, "layers", list, what)))
        for i, layer in enumerate(layers):
            if layer.media_type not in LAYER_TYPES:
                raise InputError(f"{what}: layer {i} has unsupported media type {layer.media_type!r}")
        return cls(raw, mt, config, layers, _str_map(doc.get("annotations"), what), doc)


@dataclass(frozen=True)
class Index(Document):
    """An image index (OCI) or manifest list (Docker) with its exact bytes."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] | None
    doc: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None, what: str) -> "Index":
        doc, mt = _parse_document(raw, media_type, INDEX_TYPES, OCI_INDEX, "index", what)
        manifests = tuple(Descriptor.from_json(d, f"{what} entry {i}")
                          for i, d in enumerate(_need(doc, "manifests", list, what)))
        return cls(raw, mt, manifests, _str_map(doc.get("annotations"), what), doc)


def sniff_media_type(raw: bytes, what: str) -> str:
    """Media type of a manifest-or-index document that does not say it (old OCI layouts)."""
    doc = load_json(raw, what)
    mt = doc.get("mediaType")
    if isinstance(mt, str):
        return mt
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc:
        return OCI_MANIFEST
    raise InputError(f"{what}: neither a manifest nor an index")


@dataclass(frozen=True)
class HistoryEntry:
    """One ``history`` item of an image config; ``empty_layer`` entries have no layer."""

    doc: Mapping[str, Any]

    @property
    def empty_layer(self) -> bool:
        return bool(self.doc.get("empty_layer"))

    @property
    def created_by(self) -> str:
        return str(self.doc.get("created_by", ""))


@dataclass(frozen=True)
class ImageConfig(Document):
    """An image config with its exact bytes; typed accessors for the fields slimmer uses."""

    doc: Mapping[str, Any]
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]

    @classmethod
    def parse(cls, raw: bytes, what: str) -> "ImageConfig":
        doc = load_json(raw, what)
        rootfs = _need(doc, "rootfs", dict, what)
        diff_ids = tuple(check_digest(d, what + " diff_id")
                         for d in _need(rootfs, "diff_ids", list, what + " rootfs"))
        hist = doc.get("history") or []
        if not isinstance(hist, list) or not all(isinstance(h, dict) for h in hist):
            raise InputError(f"{what}: history must be a list of objects")
        return cls(raw, doc, diff_ids, tuple(HistoryEntry(h) for h in hist))

    @property
    def _cfg(self) -> Mapping[str, Any]:
        cfg = self.doc.get("config") or {}
        return cfg if isinstance(cfg, Mapping) else {}

    @property
    def entrypoint(self) -> tuple[str, ...]:
        return tuple(str(x) for x in (self._cfg.get("Entrypoint") or ()))

    @property
    def cmd(self) -> tuple[str, ...]:
        return tuple(str(x) for x in (self._cfg.get("Cmd") or ()))

    @property
    def env(self) -> dict[str, str]:
        out = {}
        for item in self._cfg.get("Env") or ():
            key, _, value = str(item).partition("=")
            out[key] = value
        return out

    @property
    def working_dir(self) -> str:
        return str(self._cfg.get("WorkingDir") or "/")

    @property
    def healthcheck(self) -> tuple[str, ...]:
        """``Healthcheck.Test``: ("CMD", argv...), ("CMD-SHELL", command), ("NONE",) or ()."""
        hc = self._cfg.get("Healthcheck")
        test = hc.get("Test") if isinstance(hc, Mapping) else None
        return tuple(str(x) for x in test) if isinstance(test, list) else ()

    @property
    def shell(self) -> tuple[str, ...]:
        """The ``Shell`` that shell-form commands run with (empty: the default /bin/sh -c)."""
        return tuple(str(x) for x in (self._cfg.get("Shell") or ()))

    @property
    def user(self) -> str:
        return str(self._cfg.get("User") or "")

    @property
    def platform(self) -> Platform | None:
        if isinstance(self.doc.get("os"), str) and isinstance(self.doc.get("architecture"), str):
            return Platform(self.doc["os"], self.doc["architecture"], self.doc.get("variant"))
        return None
