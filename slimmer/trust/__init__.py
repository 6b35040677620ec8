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

from .cosign import (SIGNATURE_ANNOTATION, SignatureCheck, SignatureEntry, SignatureManifest,
                     VerificationResult, append_signature, build_signature_manifest,
                     normalize_repository, same_repository, sign_payload, signature_tag,
                     verify_image_signatures, verify_signature)
from .keys import (PrivateKey, PublicKey, load_private_key, load_private_key_file,
                   load_public_key, load_public_key_file, read_password)
from .options import TrustOptions
from .payload import (COSIGN_SIGNATURE_TYPE, SIMPLESIGNING_MEDIA_TYPE, SimpleSigningPayload,
                      build_payload, parse_payload)
from .referrers import (REPORT_ARTIFACT_TYPE, REPORT_MEDIA_TYPE, Artifact, IndexUpdate,
                        build_report_artifact, list_referrers, referrer_descriptor,
                        referrers_tag, report_layer, update_referrers_index)

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
