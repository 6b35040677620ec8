"""Trust core: keys, cosign simple-signing signatures and the report artifact, all without a
registry. The registry client fetches and pushes what these functions name; see each module's
docstring for its interface and the format facts behind it.

- :mod:`.keys`: load PEM public/private keys (ECDSA P-256, RSA, Ed25519), passwords from an
  environment variable name or a file.
- :mod:`.payload`: build/parse the ``application/vnd.dev.cosign.simplesigning.v1+json`` payload.
- :mod:`.cosign`: sign/verify payloads, the ``sha256-<hex>.sig`` tag and manifest (append keeps
  other signatures), and ``verify_image_signatures`` ("who signed what").
- :mod:`.referrers`: the "what was removed" report as an OCI artifact with ``subject``, and the
  referrers tag fallback index.
- :mod:`.options`: ``TrustOptions``, what ``slim(..., trust=)``, the CLI and the hook pass.
- :mod:`.remote` (imported on demand): the same against a registry: fetch and verify ``.sig``
  tags, sign a pushed image, attach and fetch the report artifact.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    'SIGNATURE_ANNOTATION': 'cosign',
    'SignatureCheck': 'verify',
    'SignatureEntry': 'cosign',
    'SignatureManifest': 'cosign',
    'VerificationResult': 'verify',
    'append_signature': 'cosign',
    'build_signature_manifest': 'cosign',
    'normalize_repository': 'verify',
    'same_repository': 'verify',
    'sign_payload': 'cosign',
    'signature_tag': 'cosign',
    'verify_image_signatures': 'verify',
    'verify_signature': 'cosign',
    'PrivateKey': 'keys',
    'PublicKey': 'keys',
    'load_private_key': 'keys',
    'load_private_key_file': 'keys',
    'load_public_key': 'keys',
    'load_public_key_file': 'keys',
    'read_password': 'keys',
    'TrustOptions': 'options',
    'COSIGN_SIGNATURE_TYPE': 'payload',
    'SIMPLESIGNING_MEDIA_TYPE': 'payload',
    'SimpleSigningPayload': 'payload',
    'build_payload': 'payload',
    'parse_payload': 'payload',
    'REPORT_ARTIFACT_TYPE': 'referrers',
    'REPORT_MEDIA_TYPE': 'referrers',
    'Artifact': 'referrers',
    'IndexUpdate': 'referrers',
    'build_report_artifact': 'referrers',
    'list_referrers': 'referrers',
    'referrer_descriptor': 'referrers',
    'referrers_tag': 'referrers',
    'report_layer': 'referrers',
    'update_referrers_index': 'referrers',
}

__all__ = [
    "SIGNATURE_ANNOTATION", "SignatureCheck", "SignatureEntry", "SignatureManifest",
    "VerificationResult", "append_signature", "build_signature_manifest", "normalize_repository",
    "same_repository", "sign_payload", "signature_tag", "verify_image_signatures",
    "verify_signature", "PrivateKey", "PublicKey", "load_private_key", "load_private_key_file",
    "load_public_key", "load_public_key_file", "read_password", "COSIGN_SIGNATURE_TYPE",
    "SIMPLESIGNING_MEDIA_TYPE", "SimpleSigningPayload", "build_payload", "parse_payload",
    "REPORT_ARTIFACT_TYPE", "REPORT_MEDIA_TYPE", "Artifact", "IndexUpdate",
    "build_report_artifact", "list_referrers", "referrer_descriptor", "referrers_tag",
    "report_layer", "update_referrers_index", "TrustOptions",
]


def __getattr__(name: str) -> Any:
    """Names load from their module on first use, so importing ``slimmer`` (for example for
    ``TrustOptions``) does not load the cryptography package until a key is read."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
