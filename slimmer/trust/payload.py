"""The cosign "simple signing" payload: build it deterministically, parse it strictly.

Public interface
----------------
``SIMPLESIGNING_MEDIA_TYPE``, ``COSIGN_SIGNATURE_TYPE``
``SimpleSigningPayload(docker_reference, manifest_digest, optional)``  (frozen dataclass)
``build_payload(docker_reference, manifest_digest, optional=None) -> bytes``
``parse_payload(raw, what="signature payload") -> SimpleSigningPayload``
``go_json(value, sort_keys=True) -> bytes``  compact JSON encoded the way Go's ``json.Marshal`` does

Format (containers-signature(5) "JSON data format", with cosign's type string)::

    {"critical":{"identity":{"docker-reference":REF},
                 "image":{"docker-manifest-digest":DIGEST},
                 "type":"cosign container image signature"},
     "optional":{...} | null}

Byte layout of :func:`build_payload`: cosign marshals a Go struct whose field order (critical,
identity, image, type, optional) happens to be alphabetical, and Go marshals maps (``optional``)
with sorted keys; Go also escapes ``<``, ``>``, ``&``, U+2028 and U+2029 inside strings. ``go_json``
does the same, so for equal inputs the bytes equal what cosign signs (checked against the real
cosign vectors in the tests). Verification never depends on this: a signature covers whatever exact
bytes are in the blob.

Parsing is strict, like containers/image and unlike Go's lenient decoder: the document must be a
JSON object without duplicate keys; ``critical`` must have exactly ``identity``, ``image`` and
``type``; ``identity`` exactly ``docker-reference`` (a non-empty string); ``image`` exactly
``docker-manifest-digest`` (a well-formed digest); ``type`` must be
``cosign container image signature``; ``optional`` may be absent, null or an object; no other
top-level keys. Anything else raises TrustError.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from slimmer.errors import InputError, TrustError
from slimmer.oci.digest import check_digest

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"

MAX_PAYLOAD_BYTES = 1 << 20

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any, sort_keys: bool = True) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it: UTF-8, HTML-unsafe characters escaped,
    keys sorted (as Go does for maps) unless ``sort_keys`` is False (dict order kept, as Go does for
    struct fields). Floats are refused (Go and Python format some of them differently)."""
    _check_jsonable(value, "value")
    text = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in _GO_ESCAPES.items():
        # These characters can only occur inside JSON strings, so a plain replace is exact.
        text = text.replace(ch, esc)
    return text.encode()


def _check_jsonable(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        raise TrustError(f"payload {where}: floating-point values are not allowed")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_jsonable(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TrustError(f"payload {where}: keys must be strings")
            _check_jsonable(item, f"{where}.{key}")
        return
    raise TrustError(f"payload {where}: {type(value).__name__} is not a JSON value")


@dataclass(frozen=True)
class SimpleSigningPayload:
    """A parsed payload; ``optional`` is None when the document has ``"optional": null``."""

    docker_reference: str
    manifest_digest: str
    optional: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"critical": {"identity": {"docker-reference": self.docker_reference},
                             "image": {"docker-manifest-digest": self.manifest_digest},
                             "type": COSIGN_SIGNATURE_TYPE},
                "optional": None if self.optional is None else dict(self.optional)}


def build_payload(docker_reference: str, manifest_digest: str,
                  optional: Mapping[str, Any] | None = None) -> bytes:
    """The payload bytes to sign for ``manifest_digest``, with cosign's byte layout.

    ``docker_reference`` is what cosign writes: the repository without tag or digest (e.g.
    ``registry.example:5000/team/app``; cosign spells Docker Hub ``index.docker.io/library/x``).
    ``optional`` holds extra claims (``cosign sign -a key=value`` puts string pairs there).
    """
    if not isinstance(docker_reference, str) or not docker_reference:
        raise TrustError("payload: docker-reference must be a non-empty string")
    try:
        check_digest(manifest_digest, "payload docker-manifest-digest")
    except InputError as exc:
        raise TrustError(str(exc)) from exc
    if optional is not None and not isinstance(optional, Mapping):
        raise TrustError("payload: optional must be a mapping or None")
    return go_json(SimpleSigningPayload(docker_reference, manifest_digest, optional).to_json())


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _exact(obj: Any, keys: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise TrustError(f"{what} is not a JSON object")
    if set(obj) != keys:
        missing = sorted(keys - set(obj))
        extra = sorted(set(obj) - keys)
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        detail = "; ".join(parts)
        raise TrustError(f"{what}: {detail}")
    return obj


def parse_payload(raw: bytes, what: str = "signature payload") -> SimpleSigningPayload:
    """Parse and validate payload bytes strictly (see the module docstring)."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise TrustError(f"{what}: {len(raw)} bytes is too large")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TrustError(f"{what}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise TrustError(f"{what}: not a JSON object")
    extra = sorted(set(doc) - {"critical", "optional"})
    if extra or "critical" not in doc:
        raise TrustError(f"{what}: " + (f"unexpected field {extra[0]!r}" if extra
                                        else "missing field 'critical'"))
    critical = _exact(doc["critical"], {"identity", "image", "type"}, f"{what} critical")
    if critical["type"] != COSIGN_SIGNATURE_TYPE:
        raise TrustError(f"{what}: critical.type is {critical['type']!r}, "
                         f"not {COSIGN_SIGNATURE_TYPE!r}")
    identity = _exact(critical["identity"], {"docker-reference"}, f"{what} critical.identity")
    ref = identity["docker-reference"]
    if not isinstance(ref, str) or not ref:
        raise TrustError(f"{what}: docker-reference must be a non-empty string")
    image = _exact(critical["image"], {"docker-manifest-digest"}, f"{what} critical.image")
    try:
        digest = check_digest(image["docker-manifest-digest"], f"{what} docker-manifest-digest")
    except InputError as exc:
        raise TrustError(str(exc)) from exc
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise TrustError(f"{what}: optional must be an object or null")
    if optional is not None and _has_bad_float(optional):
        raise TrustError(f"{what}: optional holds a non-finite number")
    return SimpleSigningPayload(ref, digest, optional)


def _has_bad_float(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_bad_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bad_float(v) for v in value)
    return False
