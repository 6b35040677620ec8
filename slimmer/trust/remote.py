"""Trust against a registry: fetch and verify cosign signatures, sign a pushed image, attach and
fetch the report artifact. The formats live in :mod:`.cosign` and :mod:`.referrers`; this module
only moves their bytes.

Public interface
----------------
Every function works on a ``transports.registry.Repository`` (one repository of a registry).
``verify_remote(repo, digest, keys, required_annotations=None, check_reference=True)``
    -> VerificationResult for the ``sha256-<hex>.sig`` tag of ``digest`` (TrustError if absent)
``sign_remote(repo, digest, key, optional) -> Attachment``  append a signature to the ``.sig`` tag
``attach_report(repo, subject, report, created) -> Attachment``  push the report artifact, listed
    by the referrers API or, where the registry has none, in the referrers tag fallback index
``find_reports(repo, digest) -> list[Descriptor]`` / ``fetch_report(repo, digest, ...) -> bytes``
``verify_source(...)`` / ``publish(...)``  the two steps ``slim`` runs around a push

Order of writes in ``publish`` (after the image is pushed and tagged): the report artifact (blobs,
manifest by digest, then the fallback index tag), then the signature (payload blob, config, then
the ``.sig`` manifest under its tag). Signing last means a signature is only ever written for an
image whose report is attached, and the signed payload names that report's digest.

Concurrent writers of the same ``.sig`` or referrers tag can lose each other's entries
(read-modify-write without conditional requests, which CNCF distribution 2.8 does not offer);
cosign has the same race.
"""

from __future__ import annotations

import datetime
from typing import Any, Mapping, Sequence

from slimmer.errors import RegistryError, SlimmerError, TrustError, UsageError
from slimmer.oci.digest import sha256_digest, short
from slimmer.oci.image import Pinnable, Sink, Source
from slimmer.oci.media import MANIFEST_TYPES, OCI_INDEX
from slimmer.oci.model import Descriptor, dump_json, load_json
from slimmer.oci.refs import RegistryRef, parse_reference
from slimmer.options import SlimOptions
from slimmer.report.model import Attachment, Report
from slimmer.transports.registry.options import RegistryOptions
from slimmer.transports.registry.repository import RegistryBacked, Repository
from slimmer.trust.cosign import append_signature, sign_payload, signature_tag
from slimmer.trust.keys import PrivateKey, PublicKey
from slimmer.trust.options import TrustOptions
from slimmer.trust.payload import MAX_PAYLOAD_BYTES, build_payload
from slimmer.trust.referrers import (
    REPORT_ARTIFACT_TYPE,
    build_report_artifact,
    list_referrers,
    referrers_tag,
    report_layer,
    update_referrers_index,
)
from slimmer.trust.verify import VerificationResult, verify_image_signatures

#: Manifest annotation of a report artifact: sha256 of the report JSON (shown in referrer lists).
REPORT_DIGEST_ANNOTATION = "vnd.slimmer.report.digest"
#: Largest report accepted from a registry (it lists every removed path).
REPORT_LIMIT = 256 << 20
_CHUNK = 1 << 20
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


# --- signatures -------------------------------------------------------------------------------

def _at(repo: Repository, digest: str) -> str:
    return f"{repo.name}@{digest}"


def verify_remote(repo: Repository, digest: str, keys: Sequence[PublicKey],
                  required_annotations: Mapping[str, Any] | None = None,
                  check_reference: bool = True) -> VerificationResult:
    """Check every signature in ``repo``'s ``sha256-<hex>.sig`` tag for ``digest``.

    With ``check_reference`` a signature counts only if its ``docker-reference`` names this
    repository (see :mod:`.cosign`). Raises TrustError when there is no signature tag.
    """
    tag = signature_tag(digest)
    what = f"reading signatures of {_at(repo, short(digest))}"
    got = repo.find_manifest(tag, what)
    if got is None:
        raise TrustError(f"no signature for {_at(repo, digest)}: {repo.name} has no tag {tag}")
    raw = got[0]

    def fetch(layer: str) -> bytes:
        return repo.read_blob(layer, MAX_PAYLOAD_BYTES, f"{what}: payload {short(layer)}",
                              error=TrustError)

    try:
        return verify_image_signatures(raw, fetch, digest, keys,
                                       repo.name if check_reference else None,
                                       required_annotations)
    except TrustError as exc:
        raise TrustError(f"{what}: {exc}") from exc


def sign_remote(repo: Repository, digest: str, key: PrivateKey,
                optional: Mapping[str, Any] | None = None) -> Attachment:
    """Sign ``digest`` for ``repo`` and append the signature to its ``.sig`` tag (other
    signatures are kept; the same key signing the same payload again adds nothing)."""
    tag = signature_tag(digest)
    what = f"signing {_at(repo, short(digest))}"
    payload = build_payload(repo.name, digest, dict(optional) if optional else None)
    signature = sign_payload(key, payload)
    existing = repo.find_manifest(tag, f"{what}: reading {tag}")
    if existing is not None and existing[1] not in MANIFEST_TYPES:
        raise TrustError(f"{what}: {repo.name}:{tag} is a {existing[1] or 'document'} "
                         "of unknown type, not a signature manifest")
    manifest = append_signature(existing[0] if existing else None, payload, signature,
                                public_key=key.public)
    if manifest.changed:
        for blob_digest, data in manifest.blobs.items():
            repo.put_blob(blob_digest, data, f"{what}: pushing blob {short(blob_digest)}")
        repo.put_manifest(tag, manifest.manifest, manifest.media_type, f"{what}: pushing {tag}")
    count = len(manifest.layers)
    note = (f"key {key.public.short_id}, {count} signature{'s' if count != 1 else ''}"
            + ("" if manifest.changed else ", already signed"))
    return Attachment("signature", f"{repo.name}:{tag}", manifest.digest, note)


# --- the report artifact ----------------------------------------------------------------------

def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_reports(repo: Repository, digest: str) -> list[Descriptor]:
    """Report artifacts referring to ``digest``: from the referrers API, else from the
    referrers tag; listed order (oldest first as written)."""
    what = f"listing referrers of {_at(repo, short(digest))}"
    index = repo.referrers(digest, what)
    if index is None:
        got = repo.find_manifest(referrers_tag(digest), what)
        if got is None:
            return []
        index = got[0]
    try:
        return list_referrers(index, REPORT_ARTIFACT_TYPE)
    except TrustError as exc:
        raise TrustError(f"{what}: {exc}") from exc


def attach_report(repo: Repository, subject: Descriptor, report: bytes,
                  created: str | None = None) -> Attachment:
    """Push ``report`` as an artifact whose ``subject`` is the image; list it in the referrers
    tag unless the registry indexed it itself (``OCI-Subject``). A report with the same bytes
    already attached is not pushed again."""
    what = f"attaching the report to {_at(repo, short(subject.digest))}"
    report_digest = sha256_digest(report)
    for desc in find_reports(repo, subject.digest):
        if (desc.annotations or {}).get(REPORT_DIGEST_ANNOTATION) == report_digest:
            return Attachment("report", _at(repo, desc.digest), desc.digest,
                              "already attached")
    artifact = build_report_artifact(report, subject, created or _now(),
                                     {REPORT_DIGEST_ANNOTATION: report_digest})
    for blob_digest, data in artifact.blobs.items():
        repo.put_blob(blob_digest, data, f"{what}: pushing blob {short(blob_digest)}")
    headers = repo.put_manifest(artifact.digest, artifact.manifest, artifact.media_type,
                                f"{what}: pushing artifact {short(artifact.digest)}")
    if headers.get("oci-subject") == subject.digest:
        return Attachment("report", _at(repo, artifact.digest), artifact.digest,
                          "referrers API")
    tag = referrers_tag(subject.digest)
    existing = repo.find_manifest(tag, f"{what}: reading referrers tag {tag}")
    try:
        update = update_referrers_index(existing[0] if existing else None, artifact.descriptor)
    except TrustError as exc:
        raise TrustError(f"{what}: {repo.name}:{tag}: {exc}") from exc
    if update.changed:
        repo.put_manifest(tag, update.raw, OCI_INDEX, f"{what}: pushing referrers tag {tag}")
    return Attachment("report", _at(repo, artifact.digest), artifact.digest,
                      f"referrers tag {tag}")


def fetch_report(repo: Repository, digest: str,
                 wanted: Sequence[str] | None = None) -> bytes:
    """The newest report attached to ``digest`` (or, with ``wanted``, the newest whose JSON
    has one of those sha256 digests); TrustError when there is none."""
    what = f"reading the report of {_at(repo, short(digest))}"
    candidates = find_reports(repo, digest)
    if not candidates:
        raise TrustError(f"no report attached to {_at(repo, digest)}")
    for desc in reversed(candidates):
        got = repo.find_manifest(desc.digest, f"{what}: artifact {short(desc.digest)}")
        if got is None:
            continue
        try:
            layer = report_layer(got[0])
        except TrustError as exc:
            raise TrustError(f"{what}: artifact {short(desc.digest)}: {exc}") from exc
        if wanted is not None and layer.digest not in wanted:
            continue
        return repo.read_blob(layer.digest, REPORT_LIMIT, f"{what}: blob {short(layer.digest)}",
                              layer.size, error=TrustError)
    if wanted is not None:
        raise TrustError(f"no report attached to {_at(repo, digest)} matches the digest "
                         f"recorded by its signature ({', '.join(short(w) for w in wanted)})")
    raise TrustError(f"no readable report attached to {_at(repo, digest)}")


# --- the steps around slim() --------------------------------------------------------------------

def registry_ref_of(target: Source | Sink | str) -> RegistryRef | None:
    """The registry reference of a source/sink or reference string, or None (a layout)."""
    if isinstance(target, str):
        parsed = parse_reference(target)
        return parsed if isinstance(parsed, RegistryRef) else None
    return target.repository.ref if isinstance(target, RegistryBacked) else None


def check_targets(trust: TrustOptions, source: Source | str, dest: Sink | str) -> None:
    """UsageError before any work when an option needs a registry the reference is not."""
    if trust.verify_keys and registry_ref_of(source) is None:
        raise UsageError("verifying the source signature needs a registry source "
                         "(cosign keeps signatures in the registry, under sha256-<hex>.sig)")
    if registry_ref_of(dest) is None:
        if trust.sign_key is not None:
            raise UsageError("signing needs a registry destination (cosign signatures are "
                             "stored in the registry next to the image)")
        if trust.attach_report:
            raise UsageError("attaching the report needs a registry destination; use "
                             "--json FILE to keep the report of a layout push")


def source_reference(source: Source | str, digest: str) -> str:
    """``HOST/REPO@DIGEST`` (or ``oci:DIR@DIGEST``): the source as the signature records it."""
    if isinstance(source, str):
        ref = parse_reference(source)
        return f"{ref.name}@{digest}" if isinstance(ref, RegistryRef) else ref.pinned(digest)
    if isinstance(source, Pinnable):
        return source.pinned(digest)
    return f"{source.name}@{digest}"


def verify_source(source: Source, digest: str, trust: TrustOptions,
                  registry: RegistryOptions | None = None) -> list[dict[str, Any]]:
    """Require a valid signature by one of ``trust``'s keys on the source's ``digest``
    (signed for its repository); returns the valid signatures for the report."""
    ref = registry_ref_of(source)
    if ref is None:  # check_targets ran first
        raise UsageError("verifying the source signature needs a registry source")
    if isinstance(source, RegistryBacked):      # its connection and token serve here too
        repo, own = source.repository, False
    else:
        repo, own = Repository.open(ref, registry, "source"), True
    try:
        result = verify_remote(repo, digest, trust.public_keys).require_valid()
    except TrustError as exc:
        raise TrustError(f"verifying source {ref}: {exc}") from exc
    finally:
        if own:
            repo.close()
    return [{"key_id": c.key.key_id, "algorithm": c.key.algorithm,
             "signature": c.layer_digest, "docker_reference": c.payload.docker_reference}
            for c in result.valid if c.key is not None and c.payload is not None]


def signed_options(report: Report, source: str, report_digest: str | None,
                   options: SlimOptions, extra: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The payload ``optional`` section: source, slim options summary, report digest, extras.
    Every value is a string so ``cosign verify -a key=value`` can check it."""
    out = dict(extra)
    out.update({"source": source,
                "profiles": ",".join(report.profiles) or "none",
                "merge": str(options.merge),
                "compression": str(options.compression)})
    if report_digest:
        out["report"] = report_digest
    return out


def report_bytes(report: Report) -> bytes:
    """The report as attached: ``report.to_dict()`` without run details (the same image
    gives the same report whether its layers were built or taken from the layer cache), as
    compact JSON with sorted keys."""
    return dump_json(report.to_dict(run_details=False))


def publish(report: Report, sink: Sink, top: Descriptor, trust: TrustOptions,
            source: Source | str, options: SlimOptions,
            registry: RegistryOptions | None = None) -> list[Attachment]:
    """After the push and the tag: attach the report, then sign (see the module docstring).

    Errors say that the image itself was pushed."""
    ref = registry_ref_of(sink)
    attach = trust.attach_report if trust.attach_report is not None else ref is not None
    key = trust.private_key
    if ref is None or (not attach and key is None):
        return []
    out: list[Attachment] = []
    sink_options = sink.repository.options if isinstance(sink, RegistryBacked) else registry
    try:
        with Repository.open(ref, sink_options, "dest", push=True) as repo:
            report_digest = None
            if attach:
                data = report_bytes(report)
                report_digest = sha256_digest(data)
                out.append(attach_report(repo, top, data, trust.report_created))
            if key is not None:
                optional = signed_options(report, source_reference(source, report.source_digest),
                                          report_digest, options, trust.sign_annotations)
                out.append(sign_remote(repo, top.digest, key, optional))
    except SlimmerError as exc:
        cls = type(exc) if isinstance(exc, (TrustError, RegistryError)) else TrustError
        message = f"{_at_ref(ref, top.digest)} was pushed, but {exc}"
        err = cls(message, exc.status) if isinstance(exc, RegistryError) else cls(message)
        raise err from exc
    return out


def _at_ref(ref: RegistryRef, digest: str) -> str:
    return f"{ref}@{short(digest)}" if ref.tag else f"{ref.name}@{short(digest)}"


def parse_json_report(data: bytes, what: str) -> dict[str, Any]:
    """A fetched report as a JSON object (TrustError if it is not one)."""
    return load_json(data, what, TrustError)


__all__ = ["REPORT_DIGEST_ANNOTATION", "attach_report", "check_targets",
           "fetch_report", "find_reports", "parse_json_report", "publish", "registry_ref_of",
           "report_bytes", "sign_remote", "signed_options", "source_reference",
           "verify_remote", "verify_source"]
