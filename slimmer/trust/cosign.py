"""cosign key-based image signatures, without a registry: sign a payload and build or extend
the ``.sig`` manifest (verification is in ``trust.verify``).

Everything here works on bytes; the registry client only has to fetch and push what these
functions name (the ``.sig`` tag, its manifest, the blobs).

Public interface
----------------
``SIGNATURE_ANNOTATION``  ``dev.cosignproject.cosign/signature`` (base64 of the DER signature)
``sign_payload(private_key, payload) -> str``  base64 signature over the exact payload bytes
``verify_signature(public_key, payload, b64sig) -> bool``
``signature_tag(digest) -> str``  ``sha256-<hex>.sig``, where cosign stores an image's signatures
``SignatureManifest``  the manifest bytes to PUT at that tag plus the blobs it references
``build_signature_manifest(entries, created=None, docker_media_types=False) -> SignatureManifest``
``append_signature(existing, payload, b64sig, annotations=None, public_key=None, created=None)``
    add one signature layer to an existing ``.sig`` manifest (or start one) keeping every existing
    layer descriptor byte-for-byte; an identical signature is not added twice (``changed`` False)

What cosign writes (sigstore/cosign ``pkg/oci/static``, ``pkg/oci/empty``, ``pkg/oci/mutate``):
an OCI image manifest whose layers are the payload blobs, media type
``application/vnd.dev.cosign.simplesigning.v1+json``, each with the signature annotation; the
config (media type ``application/vnd.oci.image.config.v1+json``) is go-containerregistry's empty
image config extended by ``mutate.Append``: one ``rootfs.diff_ids`` entry per layer (the payload's
own sha256, as the layer is stored uncompressed) and one zero-time ``history`` entry per layer.
cosign only sets ``created`` with ``--record-creation-timestamp``; we take it as an argument so
output stays deterministic. cosign reads only the manifest's layers and their blobs, never the
config. With ``COSIGN_DOCKER_MEDIA_TYPES=1`` cosign uses Docker schema2 types instead; appending
keeps whichever types the existing manifest has.

Duplicates (cosign's DupeDetector): a new layer is not added when an existing layer has the same
payload digest and media type, carries every new non-signature annotation with the same value, and
its signature is the same string or verifies with ``public_key`` over the payload.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from slimmer.errors import InputError, TrustError
from slimmer.oci.digest import check_digest, sha256_digest
from slimmer.oci.media import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST
from slimmer.trust.keys import (
    ECDSA_P256_SHA256,
    ED25519,
    RSA_PKCS1V15_SHA256,
    PrivateKey,
    PublicKey,
)
from slimmer.trust.payload import SIMPLESIGNING_MEDIA_TYPE, go_json

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
MAX_SIGNATURE_LAYERS = 1000  # cosign refuses more (pkg/oci/mutate maxLayers)
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what cosign's config carries

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# --- signatures -------------------------------------------------------------------------------

def sign_payload(private_key: PrivateKey, payload: bytes) -> str:
    """Sign the exact ``payload`` bytes; return the standard base64 of the signature
    (ASN.1 DER for ECDSA, raw for RSA PKCS#1 v1.5 and Ed25519), as cosign stores it."""
    key = private_key.key
    if private_key.algorithm == ECDSA_P256_SHA256:
        sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    elif private_key.algorithm == RSA_PKCS1V15_SHA256:
        sig = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif private_key.algorithm == ED25519:
        sig = key.sign(payload)
    else:  # pragma: no cover - keys.py only makes the three above
        raise TrustError(f"{private_key.source}: cannot sign with {private_key.algorithm}")
    return base64.b64encode(sig).decode("ascii")


def decode_signature(b64sig: str) -> bytes | None:
    """Strict standard-base64 decode; None if ``b64sig`` is not valid base64 or is empty."""
    if not isinstance(b64sig, str) or not b64sig:
        return None
    try:
        return base64.b64decode(b64sig.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def verify_signature(public_key: PublicKey, payload: bytes, b64sig: str) -> bool:
    """True if ``b64sig`` is a valid signature by ``public_key`` over the exact ``payload``
    bytes."""
    sig = decode_signature(b64sig)
    if sig is None:
        return False
    key = public_key.key
    try:
        if public_key.algorithm == ECDSA_P256_SHA256:
            key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        elif public_key.algorithm == RSA_PKCS1V15_SHA256:
            key.verify(sig, payload, padding.PKCS1v15(), hashes.SHA256())
        elif public_key.algorithm == ED25519:
            key.verify(sig, payload)
        else:  # pragma: no cover
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def signature_tag(digest: str) -> str:
    """The tag cosign stores an image's signatures under: ``sha256:ab..`` ->
    ``sha256-ab...sig``."""
    try:
        check_digest(digest, "image digest")
    except InputError as exc:
        raise TrustError(str(exc)) from exc
    return digest.replace(":", "-", 1) + ".sig"


# --- the .sig manifest ------------------------------------------------------------------------

@dataclass(frozen=True)
class SignatureEntry:
    """One signature layer to write: payload bytes, base64 signature, extra layer annotations
    (e.g. ``dev.sigstore.cosign/bundle``); the signature annotation is added from ``signature``."""

    payload: bytes
    signature: str
    annotations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SignatureManifest:
    """A ``.sig`` manifest ready to push: ``manifest`` are the exact bytes to PUT (with content type
    ``media_type``); ``blobs`` maps digest -> bytes for the config and the payloads this call added
    (existing layers' blobs are already in the repository). ``changed`` is False when appending
    found the signature already present; then nothing needs pushing."""

    manifest: bytes
    media_type: str
    blobs: Mapping[str, bytes]
    changed: bool = True
    layers: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def _check_created(created: str | None) -> str:
    if created is None:
        return ZERO_TIME
    if not isinstance(created, str) or not _RFC3339.match(created):
        raise TrustError(f"created time {created!r} is not RFC 3339 (e.g. 2024-01-02T03:04:05Z)")
    return created


def _layer_descriptor(entry: SignatureEntry) -> dict[str, Any]:
    if not isinstance(entry.payload, bytes):
        raise TrustError("signature payload must be bytes")
    if decode_signature(entry.signature) is None:
        raise TrustError("signature is not valid base64")
    annotations = dict(entry.annotations or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise TrustError("signature layer annotations must map strings to strings")
    annotations[SIGNATURE_ANNOTATION] = entry.signature
    # go-containerregistry v1.Descriptor field order; Go sorts the annotation map.
    return {"mediaType": SIMPLESIGNING_MEDIA_TYPE, "size": len(entry.payload),
            "digest": sha256_digest(entry.payload),
            "annotations": dict(sorted(annotations.items()))}


def _config(layers: Sequence[Mapping[str, Any]], created: str) -> bytes:
    # go-containerregistry v1.ConfigFile field order, as json.Marshal writes the empty image's
    # config after mutate.Append: diff_id = digest because payload layers are not compressed.
    doc = {"architecture": "", "created": created,
           "history": [{"created": ZERO_TIME} for _ in layers],
           "os": "", "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layers]},
           "config": {}}
    return go_json(doc, sort_keys=False)


def _assemble(layers: Sequence[Mapping[str, Any]], media_type: str,
              annotations: Mapping[str, str] | None, created: str,
              new_payloads: Mapping[str, bytes], changed: bool) -> SignatureManifest:
    if len(layers) > MAX_SIGNATURE_LAYERS:
        raise TrustError(f"signature manifest would have {len(layers)} layers; cosign reads at "
                         f"most {MAX_SIGNATURE_LAYERS}")
    config = _config(layers, created)
    config_type = DOCKER_CONFIG if media_type == DOCKER_MANIFEST else OCI_CONFIG
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": sha256_digest(config)},
        "layers": [dict(d) for d in layers]}
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    blobs = {sha256_digest(config): config, **new_payloads}
    return SignatureManifest(go_json(doc, sort_keys=False), media_type, blobs, changed,
                             tuple(layers))


def build_signature_manifest(entries: Sequence[SignatureEntry], created: str | None = None,
                             docker_media_types: bool = False) -> SignatureManifest:
    """A fresh ``.sig`` manifest with one layer per entry, in order (cosign's layout)."""
    if not entries:
        raise TrustError("a signature manifest needs at least one signature")
    layers = [_layer_descriptor(e) for e in entries]
    payloads = {sha256_digest(e.payload): e.payload for e in entries}
    media_type = DOCKER_MANIFEST if docker_media_types else OCI_MANIFEST
    return _assemble(layers, media_type, None, _check_created(created), payloads, True)


def parse_manifest_doc(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TrustError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise TrustError(f"{what}: not a schema 2 image manifest")
    media_type = doc.get("mediaType", OCI_MANIFEST)
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise TrustError(f"{what}: unexpected media type {media_type!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not all(isinstance(d, dict) for d in layers):
        raise TrustError(f"{what}: 'layers' is not a list of descriptors")
    if len(layers) > MAX_SIGNATURE_LAYERS:
        raise TrustError(f"{what}: {len(layers)} layers, more than the {MAX_SIGNATURE_LAYERS} "
                         "cosign accepts")
    return doc


def _same_signature(existing: Mapping[str, Any], new: Mapping[str, Any], payload: bytes,
                    public_key: PublicKey | None) -> bool:
    if existing.get("digest") != new["digest"] or existing.get("mediaType") != new["mediaType"]:
        return False
    old_ann = existing.get("annotations")
    if not isinstance(old_ann, dict):
        return False
    for key, value in new["annotations"].items():
        if key != SIGNATURE_ANNOTATION and old_ann.get(key) != value:
            return False
    old_sig = old_ann.get(SIGNATURE_ANNOTATION)
    if old_sig == new["annotations"][SIGNATURE_ANNOTATION]:
        return True
    return (public_key is not None and isinstance(old_sig, str)
            and verify_signature(public_key, payload, old_sig))


def append_signature(existing: bytes | None, payload: bytes, signature: str,
                     annotations: Mapping[str, str] | None = None,
                     public_key: PublicKey | None = None,
                     created: str | None = None) -> SignatureManifest:
    """Add one signature layer to the ``.sig`` manifest ``existing`` (None: there is none yet).

    Existing layer descriptors and manifest annotations are kept verbatim, so other signers'
    signatures (and their bundles or certificates) survive; the config is rebuilt for the new layer
    list. Pass the signer's ``public_key`` so that a re-run with a fresh (randomised) ECDSA
    signature over the same payload is recognised as a duplicate, as cosign does.
    """
    entry = SignatureEntry(payload, signature, annotations)
    if existing is None:
        return build_signature_manifest([entry], created)
    doc = parse_manifest_doc(existing, "existing signature manifest")
    new = _layer_descriptor(entry)
    layers = doc["layers"]
    for old in layers:
        for key in ("mediaType", "digest", "size"):
            if key not in old:
                raise TrustError(f"existing signature manifest: a layer has no {key!r}")
    media_type = doc.get("mediaType", OCI_MANIFEST)
    manifest_annotations = doc.get("annotations")
    if not isinstance(manifest_annotations, dict):
        manifest_annotations = None
    created = _check_created(created)
    if any(_same_signature(old, new, payload, public_key) for old in layers):
        return SignatureManifest(existing, media_type, {}, False, tuple(layers))
    return _assemble([*layers, new], media_type, manifest_annotations, created,
                     {new["digest"]: payload}, True)
