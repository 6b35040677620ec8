"""Verifying cosign signatures of an image from its ``.sig`` manifest and payload blobs.

Public interface
----------------
``verify_image_signatures(signature_manifest, fetch_blob, image_digest, public_keys,
expected_reference=None, required_annotations=None) -> VerificationResult``
    checks every layer and says, per layer, which key verified it or why it was rejected
``normalize_repository(ref) -> str`` / ``same_repository(a, b) -> bool``  the reference rule

Reference rule (``expected_reference``): cosign itself ignores the docker-reference (cosign
SIGNATURE_SPEC: "The critical.identity.docker-reference field is ignored"); it checks only the
digest and ``-a`` annotations. containers/image (podman, skopeo, CRI-O) does check it; for a
digest reference its default ``matchRepoDigestOrExact`` compares repository names only. cosign
writes the repository without tag (go-containerregistry ``Repository.Name()``, Docker Hub spelled
``index.docker.io/library/x``); newer cosign may add a tag or digest. So when ``expected_reference``
is given we compare *repositories*: tag and digest are dropped from both sides, ``index.docker.io``
and ``docker.io`` are the same registry, a one-component Docker Hub path gets ``library/``, the
host is compared case-insensitively. With ``expected_reference=None`` the identity is not checked,
exactly like ``cosign verify``.

Annotations (``required_annotations``, like ``cosign verify -a k=v``): every pair must be present in
the payload's ``optional`` with an equal value of the same JSON type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from slimmer.errors import InputError, SlimmerError, TrustError, UsageError
from slimmer.oci.digest import check_digest, sha256_digest, short
from slimmer.oci.refs import canonical_registry, parse_registry_reference
from slimmer.trust.cosign import (
    SIGNATURE_ANNOTATION,
    decode_signature,
    parse_manifest_doc,
    verify_signature,
)
from slimmer.trust.keys import PublicKey
from slimmer.trust.payload import (
    MAX_PAYLOAD_BYTES,
    SIMPLESIGNING_MEDIA_TYPE,
    SimpleSigningPayload,
    parse_payload,
)


def normalize_repository(ref: str) -> str:
    """Canonical ``host/path`` repository of an image reference, without tag or digest.

    ``busybox`` -> ``docker.io/library/busybox``; ``index.docker.io/library/busybox:1`` ->
    ``docker.io/library/busybox``; ``Reg.Example:5000/a/b@sha256:..`` -> ``reg.example:5000/a/b``.
    Raises TrustError if ``ref`` is not a valid reference.
    """
    if not isinstance(ref, str) or not ref:
        raise TrustError(f"bad image reference {ref!r}")
    try:
        parsed = parse_registry_reference(ref)
    except UsageError as exc:
        raise TrustError(f"bad image reference {ref!r}") from exc
    return f"{canonical_registry(parsed.registry)}/{parsed.repository}"


def same_repository(a: str, b: str) -> bool:
    """True if two references name the same repository (see the module docstring); False if
    either cannot be parsed."""
    try:
        return normalize_repository(a) == normalize_repository(b)
    except TrustError:
        return False


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome for one layer of a ``.sig`` manifest.

    ``ok`` is True only if every check passed. ``key`` is the key whose signature verified (also
    set when a later claim check failed, so output can say "signed by K, but for another image");
    ``payload`` is the parsed payload once the signature verified; ``reason`` says why it was
    rejected (None when ``ok``).
    """

    index: int
    layer_digest: str | None
    ok: bool
    reason: str | None = None
    key: PublicKey | None = None
    payload: SimpleSigningPayload | None = None

    def describe(self) -> str:
        """One human line: who signed what, or why this layer does not count."""
        where = f"signature {self.index}"
        if self.ok and self.payload is not None and self.key is not None:
            return (f"{where}: valid, {self.key} signed {self.payload.docker_reference}"
                    f"@{short(self.payload.manifest_digest)}")
        return f"{where}: rejected, {self.reason}"


@dataclass(frozen=True)
class VerificationResult:
    """Every layer's :class:`SignatureCheck` for one image digest."""

    image_digest: str
    checks: tuple[SignatureCheck, ...]

    @property
    def valid(self) -> tuple[SignatureCheck, ...]:
        return tuple(c for c in self.checks if c.ok)

    @property
    def rejected(self) -> tuple[SignatureCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def require_valid(self) -> "VerificationResult":
        """Return self if at least one signature is valid, else raise a one-line TrustError."""
        if self.valid:
            return self
        if not self.checks:
            raise TrustError(f"no signature for {short(self.image_digest)}: the signature "
                             "manifest has no layers")
        reasons = "; ".join(f"{c.index}: {c.reason}" for c in self.checks[:5])
        more = f"; and {len(self.checks) - 5} more" if len(self.checks) > 5 else ""
        raise TrustError(f"no valid signature for {short(self.image_digest)} "
                         f"({len(self.checks)} checked: {reasons}{more})")


def _annotation_mismatch(required: Mapping[str, Any],
                         optional: Mapping[str, Any] | None) -> str | None:
    for key, want in required.items():
        if optional is None or key not in optional:
            return f"annotation {key!r} is missing"
        got = optional[key]
        if type(got) is not type(want) or got != want:
            return f"annotation {key!r} is {got!r}, expected {want!r}"
    return None


def _check_layer(index: int, desc: Any, fetch_blob: Callable[[str], bytes], image_digest: str,
                 public_keys: Sequence[PublicKey], expected_repo: str | None,
                 required_annotations: Mapping[str, Any]) -> SignatureCheck:
    if not isinstance(desc, dict):
        return SignatureCheck(index, None, False, "layer descriptor is not an object")
    try:
        digest: str = check_digest(desc.get("digest"), "layer")
    except InputError:
        return SignatureCheck(index, None, False,
                              f"layer has a malformed digest {desc.get('digest')!r}")

    def reject(reason: str, key: PublicKey | None = None,
               payload: SimpleSigningPayload | None = None) -> SignatureCheck:
        return SignatureCheck(index, digest, False, reason, key, payload)

    media_type = desc.get("mediaType")
    if media_type != SIMPLESIGNING_MEDIA_TYPE:
        return reject(f"layer media type {media_type!r} is not {SIMPLESIGNING_MEDIA_TYPE}")
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return reject("layer has no valid size")
    if size > MAX_PAYLOAD_BYTES:
        return reject(f"payload of {size} bytes is too large")
    annotations = desc.get("annotations")
    b64sig = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(b64sig, str) or not b64sig:
        return reject(f"layer has no {SIGNATURE_ANNOTATION} annotation")
    if decode_signature(b64sig) is None:
        return reject("signature annotation is not valid base64")
    try:
        blob = fetch_blob(digest)
    except SlimmerError as exc:
        return reject(f"fetching payload {short(digest)}: {exc}")
    if not isinstance(blob, bytes) or len(blob) != size or sha256_digest(blob) != digest:
        return reject(f"payload blob does not match its descriptor {short(digest)}")
    key = next((k for k in public_keys if verify_signature(k, blob, b64sig)), None)
    if key is None:
        n = len(public_keys)
        return reject("signature does not verify with the given key" if n == 1
                      else f"signature does not verify with any of the {n} given keys")
    try:
        payload = parse_payload(blob, "payload")
    except TrustError as exc:
        return reject(str(exc), key)
    if payload.manifest_digest != image_digest:
        return reject(f"signed image {short(payload.manifest_digest)}, not "
                      f"{short(image_digest)}", key, payload)
    if expected_repo is not None and not same_repository(payload.docker_reference, expected_repo):
        return reject(f"signed for repository {payload.docker_reference!r}, not "
                      f"{expected_repo!r}", key, payload)
    mismatch = _annotation_mismatch(required_annotations, payload.optional)
    if mismatch:
        return reject(mismatch, key, payload)
    return SignatureCheck(index, digest, True, None, key, payload)


def verify_image_signatures(signature_manifest: bytes, fetch_blob: Callable[[str], bytes],
                            image_digest: str, public_keys: Sequence[PublicKey],
                            expected_reference: str | None = None,
                            required_annotations: Mapping[str, Any] | None = None,
                            ) -> VerificationResult:
    """Check every layer of the ``.sig`` manifest ``signature_manifest`` (exact bytes).

    ``fetch_blob(digest) -> bytes`` returns a payload blob (it may raise a SlimmerError, recorded as
    that layer's reason); its bytes are hashed again here. A layer is valid when its payload blob
    matches the descriptor, its signature verifies with one of ``public_keys``, the payload parses
    strictly, its ``docker-manifest-digest`` equals ``image_digest``, its repository matches
    ``expected_reference`` (if given) and its ``optional`` carries ``required_annotations``.

    Raises TrustError only for bad arguments or an unreadable manifest; per-layer failures are
    returned. Call ``.require_valid()`` on the result to demand at least one valid signature.
    """
    try:
        check_digest(image_digest, "image digest")
    except InputError as exc:
        raise TrustError(str(exc)) from exc
    if not public_keys:
        raise TrustError("no public key given to verify signatures with")
    expected_repo = None
    if expected_reference is not None:
        normalize_repository(expected_reference)  # fail early on a bad argument
        expected_repo = expected_reference
    doc = parse_manifest_doc(signature_manifest, f"signature manifest for {short(image_digest)}")
    required = dict(required_annotations or {})
    checks = tuple(_check_layer(i, desc, fetch_blob, image_digest, public_keys, expected_repo,
                                required)
                   for i, desc in enumerate(doc["layers"]))
    return VerificationResult(image_digest, checks)
