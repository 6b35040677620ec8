"""The "what was removed" report as an OCI artifact, and the referrers tag fallback (no registry).

Public interface
----------------
``REPORT_ARTIFACT_TYPE``, ``REPORT_MEDIA_TYPE``  ``application/vnd.slimmer.report.v1+json``
``EMPTY_MEDIA_TYPE``, ``EMPTY_BLOB``, ``EMPTY_DIGEST``  the OCI empty descriptor (``{}``, 2 bytes)
``Artifact``  manifest bytes + the blobs it references + its referrer ``descriptor``
``build_report_artifact(report, subject, created, annotations=None, ...) -> Artifact``
``referrers_tag(digest) -> str``  the OCI distribution-spec 1.1 referrers tag, ``sha256-<hex>``
``referrer_descriptor(manifest, media_type=None) -> dict``  how a referrer is listed
``update_referrers_index(existing, descriptor) -> IndexUpdate``  add one referrer to the fallback
    index (``existing`` None when the tag does not exist yet); ``changed`` False if already listed
``list_referrers(index, artifact_type=None) -> list[Descriptor]``
``report_layer(manifest) -> Descriptor``  the report blob's descriptor in a report artifact

Artifact layout (OCI image-spec 1.1 "artifacts guidance"): an image manifest with
``artifactType`` = the report type, the empty config descriptor, one layer = the JSON report
(titled ``slimmer-report.json``), ``subject`` = the slim image's descriptor, and the annotation
``org.opencontainers.image.created`` set to the *given* time, so the same inputs give the same
digest. Serialised compact with sorted keys.

Referrers fallback (distribution-spec 1.1, "Pushing Manifests with Subject" and "Referrers Tag
Schema"): when a registry does not answer the referrers API (a 404) or does not return
``OCI-Subject`` on the manifest PUT, the client keeps an OCI image index under the tag
``<alg>-<encoded>`` (algorithm truncated to 32 characters, encoded part to 64, characters a tag
cannot hold replaced by ``-``) of the subject digest. Each entry is the referrer's descriptor with
its ``artifactType`` (or, without one, its config media type) and all its manifest annotations. A
client adds its entry without creating duplicates; something at that tag that is not an image index
means "stop" (TrustError here). Concurrent writers can lose entries; the spec leaves that to
clients (conditional requests), which is the registry client's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from slimmer.errors import InputError, TrustError
from slimmer.oci.digest import check_digest, sha256_digest
from slimmer.oci.media import OCI_INDEX, OCI_MANIFEST
from slimmer.oci.model import Descriptor, dump_json, load_json

REPORT_ARTIFACT_TYPE = "application/vnd.slimmer.report.v1+json"
REPORT_MEDIA_TYPE = "application/vnd.slimmer.report.v1+json"
REPORT_TITLE = "slimmer-report.json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ANNOT_CREATED = "org.opencontainers.image.created"
ANNOT_TITLE = "org.opencontainers.image.title"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DIGEST_SYNTAX = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_NOT_TAG_CHAR = re.compile(r"[^a-zA-Z0-9._-]")


@dataclass(frozen=True)
class Artifact:
    """An artifact manifest (exact bytes) and every blob it references (digest -> bytes)."""

    manifest: bytes
    blobs: Mapping[str, bytes]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def descriptor(self) -> dict[str, Any]:
        """The descriptor that lists this artifact in a referrers index."""
        return referrer_descriptor(self.manifest, self.media_type)


@dataclass(frozen=True)
class IndexUpdate:
    """New referrers index bytes; ``changed`` False when the referrer was already listed (then
    ``raw`` are the existing bytes and nothing needs pushing)."""

    raw: bytes
    changed: bool


def _str_map(value: Mapping[str, str] | None, what: str) -> dict[str, str]:
    out = dict(value or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in out.items()):
        raise TrustError(f"{what} must map strings to strings")
    return out


def build_report_artifact(report: bytes, subject: Descriptor, created: str,
                          annotations: Mapping[str, str] | None = None,
                          artifact_type: str = REPORT_ARTIFACT_TYPE,
                          media_type: str = REPORT_MEDIA_TYPE,
                          title: str = REPORT_TITLE) -> Artifact:
    """The report artifact for the image ``subject`` (its manifest or index descriptor).

    ``created`` (RFC 3339) becomes ``org.opencontainers.image.created``; ``annotations`` are
    added to the manifest (and so appear in the referrers listing) and may not override it.
    """
    if not isinstance(report, bytes):
        raise TrustError("report must be bytes")
    if not isinstance(created, str) or not _RFC3339.match(created):
        raise TrustError(f"created time {created!r} is not RFC 3339 (e.g. 2024-01-02T03:04:05Z)")
    extra = _str_map(annotations, "report annotations")
    if ANNOT_CREATED in extra:
        raise TrustError(f"report annotations: {ANNOT_CREATED} is set from 'created'")
    try:
        check_digest(subject.digest, "report subject")
    except InputError as exc:
        raise TrustError(str(exc)) from exc
    report_digest = sha256_digest(report)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY_BLOB)},
        "layers": [{"mediaType": media_type, "digest": report_digest, "size": len(report),
                    "annotations": {ANNOT_TITLE: title}}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.size},
        "annotations": {**extra, ANNOT_CREATED: created},
    }
    return Artifact(dump_json(doc), {EMPTY_DIGEST: EMPTY_BLOB, report_digest: report})


def referrers_tag(digest: str) -> str:
    """The referrers tag for ``digest``: ``sha256:ab..`` -> ``sha256-ab..`` (distribution-spec 1.1:
    algorithm truncated to 32 characters, encoded part to 64, non-tag characters become ``-``)."""
    m = _DIGEST_SYNTAX.match(digest) if isinstance(digest, str) else None
    if not m:
        raise TrustError(f"referrers tag: malformed digest {digest!r}")
    return _NOT_TAG_CHAR.sub("-", m.group(1)[:32] + "-" + m.group(2)[:64])


def _load(raw: bytes, what: str) -> dict[str, Any]:
    return load_json(raw, what, TrustError)


def referrer_descriptor(manifest: bytes, media_type: str | None = None) -> dict[str, Any]:
    """The descriptor listing ``manifest`` in a referrers index: media type, digest, size,
    ``artifactType`` (for an image manifest without one: its config media type) and all of its
    annotations."""
    doc = _load(manifest, "referrer manifest")
    mt = doc.get("mediaType") or media_type
    if not isinstance(mt, str):
        raise TrustError("referrer manifest: no media type")
    out: dict[str, Any] = {"mediaType": mt, "digest": sha256_digest(manifest),
                           "size": len(manifest)}
    artifact_type = doc.get("artifactType")
    if not artifact_type and mt != OCI_INDEX and isinstance(doc.get("config"), dict):
        artifact_type = doc["config"].get("mediaType")
    if isinstance(artifact_type, str) and artifact_type:
        out["artifactType"] = artifact_type
    annotations = doc.get("annotations")
    if isinstance(annotations, dict) and annotations:
        out["annotations"] = dict(annotations)
    return out


def _index_doc(existing: bytes, what: str) -> dict[str, Any]:
    doc = _load(existing, what)
    if (doc.get("schemaVersion") != 2 or doc.get("mediaType", OCI_INDEX) != OCI_INDEX
            or "manifests" not in doc):
        raise TrustError(f"{what}: not an OCI image index")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list) or not all(
            isinstance(d, dict) and isinstance(d.get("digest"), str) for d in manifests):
        raise TrustError(f"{what}: 'manifests' is not a list of descriptors")
    return doc


def update_referrers_index(existing: bytes | None, descriptor: Mapping[str, Any]) -> IndexUpdate:
    """Add ``descriptor`` to the referrers index ``existing`` (None: start an empty one).

    Entries already there are kept as they are and in order; an entry with the same digest is
    replaced only if it differs (so a re-run does not duplicate it). Raises TrustError when the
    existing content is not an OCI image index (the spec says not to overwrite it then).
    """
    for key in ("mediaType", "digest", "size"):
        if key not in descriptor:
            raise TrustError(f"referrer descriptor has no {key!r}")
    new = dict(descriptor)
    if existing is None:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    else:
        doc = _index_doc(existing, "referrers index")
    manifests = doc["manifests"]
    same = [d for d in manifests if d.get("digest") == new["digest"]]
    if existing is not None and same == [new]:
        return IndexUpdate(existing, False)
    doc = {**doc, "manifests": [d for d in manifests if d.get("digest") != new["digest"]] + [new]}
    doc.setdefault("mediaType", OCI_INDEX)
    return IndexUpdate(dump_json(doc), True)


def list_referrers(index: bytes, artifact_type: str | None = None) -> list[Descriptor]:
    """The referrers listed in a referrers index (API answer or fallback tag), optionally only
    those of ``artifact_type``, in listed order."""
    doc = _index_doc(index, "referrers index")
    out = []
    for i, entry in enumerate(doc["manifests"]):
        try:
            desc = Descriptor.from_json(entry, f"referrers index entry {i}")
        except InputError as exc:
            raise TrustError(str(exc)) from exc
        if artifact_type is None or desc.extra.get("artifactType") == artifact_type:
            out.append(desc)
    return out


def report_layer(manifest: bytes, artifact_type: str = REPORT_ARTIFACT_TYPE) -> Descriptor:
    """The report blob's descriptor in a report artifact manifest (for ``slim report``)."""
    doc = _load(manifest, "report artifact")
    if doc.get("artifactType") != artifact_type:
        raise TrustError(f"report artifact: artifactType is {doc.get('artifactType')!r}, "
                         f"not {artifact_type!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list) or len(layers) != 1:
        raise TrustError("report artifact: expected exactly one layer")
    try:
        return Descriptor.from_json(layers[0], "report artifact layer")
    except InputError as exc:
        raise TrustError(str(exc)) from exc
