"""The trust side of ``slim``: the ``push`` flags (verify, sign, attach) and the ``slim verify``
and ``slim report`` commands."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Callable

import click

from slimmer.cli.common import registry_from_flags, registry_options, run
from slimmer.errors import TrustError, UsageError
from slimmer.oci.digest import short
from slimmer.oci.refs import RegistryRef, parse_reference
from slimmer.report.model import Report

if TYPE_CHECKING:
    from slimmer.trust.verify import SignatureCheck, VerificationResult
from slimmer.trust.options import TrustOptions, parse_annotation


def push_trust_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The trust flags of ``slim push``."""
    opts = [
        click.option("--verify-key", "verify_keys", multiple=True, metavar="PUBKEY.pem",
                     help="Require a valid cosign signature on the source by this public key "
                          "(repeatable: any one suffices); nothing is pushed otherwise."),
        click.option("--sign-key", metavar="KEY.pem",
                     help="Sign the pushed image (cosign format, in the destination's "
                          "sha256-<hex>.sig tag) with this PEM private key."),
        click.option("--sign-key-password-env", metavar="VAR",
                     help="Name of the environment variable holding the sign key's password."),
        click.option("--sign-key-password-file", metavar="FILE",
                     help="File holding the sign key's password."),
        click.option("--sign-annotation", "sign_annotations", multiple=True,
                     metavar="KEY=VALUE",
                     help="Extra entry of the signed payload's 'optional' section "
                          "(like cosign sign -a; repeatable)."),
        click.option("--attach-report/--no-attach-report", default=None,
                     help="Push the JSON report as an OCI artifact referring to the image "
                          "(default: on for registry destinations)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def trust_from_flags(kw: dict[str, Any]) -> TrustOptions:
    """TrustOptions from the ``push`` flags."""
    pairs = tuple(parse_annotation(a, "--sign-annotation") for a in kw["sign_annotations"])
    return TrustOptions(verify_keys=tuple(kw["verify_keys"]), sign_key=kw["sign_key"],
                        sign_key_password_env=kw["sign_key_password_env"],
                        sign_key_password_file=kw["sign_key_password_file"],
                        sign_annotations=pairs, attach_report=kw["attach_report"])


def _registry_ref(image: str, command: str) -> RegistryRef:
    ref = parse_reference(image)
    if not isinstance(ref, RegistryRef):
        raise UsageError(f"slim {command} needs a registry reference (HOST/REPO[:TAG|@DIGEST]), "
                         f"not {image!r}")
    return ref


def _keys(paths: tuple[str, ...]) -> TrustOptions:
    return TrustOptions(verify_keys=paths).load()


def describe_check(check: SignatureCheck) -> list[str]:
    """Human lines for one signature: who signed what, or why it does not count."""
    if not check.ok or check.key is None or check.payload is None:
        return [f"  signature {check.index}: rejected: {check.reason}"]
    lines = [f"  signature {check.index}: valid",
             f"    key:     {check.key.key_id} ({check.key.algorithm}, {check.key.source})",
             f"    signed:  {check.payload.docker_reference}@{check.payload.manifest_digest}",
             f"    payload: {check.layer_digest}"]
    for name, value in sorted((check.payload.optional or {}).items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        lines.append(f"    -a {name}={text}")
    return lines


def check_json(check: SignatureCheck) -> dict[str, Any]:
    """One signature as JSON for ``slim verify --json``."""
    out: dict[str, Any] = {"index": check.index, "valid": check.ok, "payload": check.layer_digest,
                           "reason": check.reason}
    if check.key is not None:
        out["key"] = {"id": check.key.key_id, "algorithm": check.key.algorithm,
                      "source": check.key.source}
    if check.payload is not None:
        out["docker_reference"] = check.payload.docker_reference
        out["docker_manifest_digest"] = check.payload.manifest_digest
        out["optional"] = check.payload.optional
    return out


def _print_result(image: str, result: VerificationResult, as_json: bool) -> None:
    if as_json:
        doc = {"image": image, "digest": result.image_digest,
               "valid": len(result.valid), "signatures": [check_json(c) for c in result.checks]}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    head = f"{image} ({result.image_digest}): {len(result.valid)} of {len(result.checks)}"
    lines = [f"{head} signatures valid"]
    for check in result.checks:
        lines.extend(describe_check(check))
    sys.stdout.write("\n".join(lines) + "\n")


@click.command()
@click.argument("image")
@click.option("--key", "keys", multiple=True, required=True, metavar="PUBKEY.pem",
              help="Public key to verify with (repeatable: any one suffices).")
@click.option("-a", "--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="Require this entry in the signed payload's 'optional' section "
                   "(like cosign verify -a; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@registry_options
def verify(image: str, keys: tuple[str, ...], annotations: tuple[str, ...], as_json: bool,
           **kw: Any) -> None:
    """Check the cosign signatures of IMAGE and print who signed what.

    A signature counts when it verifies with one of the keys, names IMAGE's digest and
    repository, and carries every -a KEY=VALUE. Exit status 1 when none counts.
    """
    def go() -> None:
        from slimmer.transports.registry.repository import Repository
        from slimmer.trust.remote import verify_remote
        ref = _registry_ref(image, "verify")
        required = dict(parse_annotation(a, "-a") for a in annotations)
        trust = _keys(keys)
        with Repository.open(ref, registry_from_flags(kw), "source") as repo:
            digest = repo.describe(ref.reference, f"reading {ref}")[1].digest
            result = verify_remote(repo, digest, trust.public_keys, required)
        _print_result(str(ref), result, as_json)
        try:
            result.require_valid()
        except TrustError as exc:
            raise TrustError(f"{ref}: {exc}") from exc
    run(go)

@click.command()
@click.argument("image")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report JSON exactly as attached.")
@click.option("--key", "keys", multiple=True, metavar="PUBKEY.pem",
              help="Only trust a report whose digest a valid signature by this key "
                   "records (repeatable).")
@registry_options
def report(image: str, as_json: bool, keys: tuple[str, ...], **kw: Any) -> None:
    """Print the report attached to IMAGE by 'slim push': what was removed, by which rule."""
    def go() -> None:
        from slimmer.transports.registry.repository import Repository
        from slimmer.trust.remote import fetch_report, parse_json_report, verify_remote
        ref = _registry_ref(image, "report")
        trust = _keys(keys) if keys else None
        with Repository.open(ref, registry_from_flags(kw), "source") as repo:
            digest = repo.describe(ref.reference, f"reading {ref}")[1].digest
            wanted = None
            if trust is not None:
                result = verify_remote(repo, digest, trust.public_keys).require_valid()
                wanted = sorted({c.payload.optional["report"] for c in result.valid
                                 if c.payload is not None and c.payload.optional
                                 and isinstance(c.payload.optional.get("report"), str)})
                if not wanted:
                    raise TrustError(f"{ref}: no valid signature records a report digest")
            data = fetch_report(repo, digest, wanted)
        if as_json:
            sys.stdout.write(data.decode("utf-8", "replace").rstrip("\n") + "\n")
            return
        what = f"report of {ref.name}@{short(digest)}"
        try:
            parsed = Report.from_dict(parse_json_report(data, what))
        except ValueError as exc:
            raise TrustError(f"{what}: {exc}") from exc
        sys.stdout.write(parsed.render_text())
    run(go)

