"""Trust against the real CNCF distribution registry: verify before slimming, sign after pushing,
attach and fetch the report, and the ways a signature is tampered with or a key is bad."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import slimmer
from slimmer.cli import main
from slimmer.errors import RegistryError, TrustError, UsageError
from slimmer.oci.digest import sha256_digest
from slimmer.oci.media import OCI_INDEX, OCI_MANIFEST
from slimmer.oci.refs import parse_registry_reference
from slimmer.options import SlimOptions
from slimmer.report.model import Report
from slimmer.transports.registry import RegistryOptions
from slimmer.transports.registry.repository import Repository
from slimmer.trust import (
    SIGNATURE_ANNOTATION,
    SignatureEntry,
    TrustOptions,
    build_payload,
    build_signature_manifest,
    load_private_key_file,
    sign_payload,
    signature_tag,
)
from slimmer.trust.referrers import REPORT_ARTIFACT_TYPE, referrers_tag
from slimmer.trust.remote import fetch_report, sign_remote, verify_remote

from support import REPO
from support.layoututil import make_image, make_index, platformed, tagged, write_layout
from support.registry_server import Registry, missing, run_registry

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
EXAMPLE = "oci:testdata/example:latest"
PASS_THROUGH = SlimOptions(profiles=("none",), merge="none", compression="keep")
VECTORS = REPO / "testdata" / "cosign"
PASSWORD = "correct horse"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX])


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("trust-registry"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """k1: PKCS#8 unencrypted; k2: SEC1 encrypted with PASSWORD; k3: never signs anything."""
    d = tmp_path_factory.mktemp("keys")
    pem = serialization.Encoding.PEM
    out: dict[str, Path] = {}
    for name, fmt, enc in (
            ("k1", serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            ("k2", serialization.PrivateFormat.TraditionalOpenSSL,
             serialization.BestAvailableEncryption(PASSWORD.encode())),
            ("k3", serialization.PrivateFormat.PKCS8, serialization.NoEncryption())):
        key = ec.generate_private_key(ec.SECP256R1())
        out[name] = d / f"{name}.pem"
        out[name].write_bytes(key.private_bytes(pem, fmt, enc))
        out[name + ".pub"] = d / f"{name}.pub"
        out[name + ".pub"].write_bytes(key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    out["garbage"] = d / "garbage.pem"
    out["garbage"].write_bytes(b"this is not a key\n")
    return out


@pytest.fixture(scope="module")
def signed_source(registry: Registry, keys: dict[str, Path]) -> str:
    """The example image in src/app:1, signed by k1 (report not attached)."""
    ref = f"{registry.host}/src/app:1"
    slimmer.slim(EXAMPLE, ref, PASS_THROUGH,
                 trust=TrustOptions(sign_key=keys["k1"], attach_report=False))
    return ref


@pytest.fixture(scope="module")
def unsigned_source(registry: Registry) -> str:
    ref = f"{registry.host}/src/unsigned:1"
    slimmer.slim(EXAMPLE, ref, PASS_THROUGH)
    return ref


# --- helpers ----------------------------------------------------------------------------------

def cli(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_line_error(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slim: error: "), result.stderr
    return lines[0]


def api(registry: Registry, repository: str, path: str) -> str:
    return f"http://{registry.host}/v2/{repository}/{path}"


def get_manifest(registry: Registry, repository: str, reference: str) -> bytes | None:
    r = httpx.get(api(registry, repository, f"manifests/{reference}"),
                  headers={"Accept": ACCEPT})
    return r.content if r.status_code == 200 else None


def digest_of(registry: Registry, ref: str) -> str:
    parsed = parse_registry_reference(ref)
    raw = get_manifest(registry, parsed.repository, parsed.reference)
    assert raw is not None, ref
    return sha256_digest(raw)


def tag_exists(registry: Registry, ref: str) -> bool:
    parsed = parse_registry_reference(ref)
    return get_manifest(registry, parsed.repository, parsed.reference) is not None


def put_blob(registry: Registry, repository: str, data: bytes) -> str:
    digest = sha256_digest(data)
    r = httpx.post(api(registry, repository, "blobs/uploads/"))
    assert r.status_code == 202, r.text
    url = httpx.URL(api(registry, repository, "")).join(r.headers["location"])
    r = httpx.put(url.copy_merge_params({"digest": digest}), content=data)
    assert r.status_code == 201, r.text
    return digest


def put_manifest(registry: Registry, repository: str, reference: str, doc: Any) -> None:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    r = httpx.put(api(registry, repository, f"manifests/{reference}"), content=raw,
                  headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text


def sig_doc(registry: Registry, ref: str) -> dict[str, Any]:
    parsed = parse_registry_reference(ref)
    raw = get_manifest(registry, parsed.repository, signature_tag(digest_of(registry, ref)))
    assert raw is not None
    return json.loads(raw)


def copy_signed(registry: Registry, source: str, ref: str, key: Path) -> str:
    """Push ``source`` to ``ref`` unchanged (layers mounted) and sign it with ``key``."""
    slimmer.slim(source, ref, PASS_THROUGH,
                 trust=TrustOptions(sign_key=key, attach_report=False))
    return ref


# --- sign, verify ---------------------------------------------------------------------------

def test_sign_then_verify(registry: Registry, keys: dict[str, Path], tmp_path: Path) -> None:
    dest = f"{registry.host}/rel/app:1"
    r = cli("push", EXAMPLE, dest, "--sign-key", keys["k1"], "--json", tmp_path / "r.json",
            "--sign-annotation", "pipeline=release-42")
    assert r.exit_code == 0, r.output
    digest = digest_of(registry, dest)
    assert f"signature: {registry.host}/rel/app:{signature_tag(digest)}" in r.stdout

    r = cli("verify", dest, "--key", keys["k1.pub"])
    assert r.exit_code == 0, r.output
    assert "1 of 1 signatures valid" in r.stdout
    key_id = load_private_key_file(keys["k1"]).public.key_id
    assert key_id in r.stdout
    assert f"signed:  {registry.host}/rel/app@{digest}" in r.stdout
    layout_digest = json.loads((tmp_path / "r.json").read_text())["source_digest"]
    source = f"oci:testdata/example@{layout_digest}"
    assert f"-a source={source}" in r.stdout and "-a pipeline=release-42" in r.stdout

    # cosign's -a KEY=VALUE: the source, the options and our own annotation can be required.
    r = cli("verify", dest, "--key", keys["k1.pub"], "-a", f"source={source}",
            "-a", "compression=zstd", "-a", "merge=auto", "-a", "profiles=caches,docs",
            "-a", "pipeline=release-42", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["digest"] == digest and doc["valid"] == 1
    assert doc["signatures"][0]["key"]["id"] == key_id
    r = cli("verify", dest, "--key", keys["k1.pub"], "-a", "compression=gzip")
    assert "annotation 'compression' is 'zstd', expected 'gzip'" in one_line_error(r)

    # The .sig manifest is cosign's layout: payload layers with the signature annotation.
    sig = sig_doc(registry, dest)
    assert sig["mediaType"] == OCI_MANIFEST and len(sig["layers"]) == 1
    layer = sig["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert SIGNATURE_ANNOTATION in layer["annotations"]


def test_verify_unsigned_and_wrong_key(registry: Registry, keys: dict[str, Path],
                                       unsigned_source: str, signed_source: str) -> None:
    line = one_line_error(cli("verify", unsigned_source, "--key", keys["k1.pub"]))
    assert "no signature for" in line and ".sig" in line
    r = cli("verify", signed_source, "--key", keys["k3.pub"])
    assert "signature does not verify with the given key" in one_line_error(r)
    assert "0 of 1 signatures valid" in r.stdout and "rejected" in r.stdout


# --- verify before slimming --------------------------------------------------------------------

def test_verify_before_slim_accepts_any_listed_key(registry: Registry, keys: dict[str, Path],
                                                   signed_source: str, tmp_path: Path) -> None:
    dest = f"{registry.host}/rel/verified:1"
    r = cli("push", signed_source, dest, "--verify-key", keys["k3.pub"],
            "--verify-key", keys["k1.pub"], "--json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert "source signature verified: key" in r.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    key_id = load_private_key_file(keys["k1"]).public.key_id
    assert [s["key_id"] for s in report["source_signatures"]] == [key_id]
    assert report["source_signatures"][0]["docker_reference"] == f"{registry.host}/src/app"
    assert tag_exists(registry, dest)


@pytest.mark.parametrize("case", ["wrong-key", "unsigned"])
def test_verify_before_slim_refuses(registry: Registry, keys: dict[str, Path],
                                    signed_source: str, unsigned_source: str, case: str) -> None:
    source = signed_source if case == "wrong-key" else unsigned_source
    dest = f"{registry.host}/refused/{case}:1"
    r = cli("push", source, dest, "--verify-key", keys["k3.pub"], "--sign-key", keys["k1"])
    line = one_line_error(r)
    assert f"verifying source {source}" in line
    # Nothing was pushed: the destination repository does not even exist.
    tags = httpx.get(api(registry, f"refused/{case}", "tags/list"))
    assert tags.status_code == 404


def test_verify_before_slim_checks_the_index_digest(registry: Registry, keys: dict[str, Path],
                                                    tmp_path: Path) -> None:
    layout = tmp_path / "multi"
    amd = make_image(layout, [{"etc/a": b"amd" * 100, "usr/share/doc/x/README": b"d" * 4000}],
                     arch="amd64")
    arm = make_image(layout, [{"etc/a": b"arm" * 100}], arch="arm64")
    index = make_index(layout, [platformed(amd, "linux", "amd64"),
                                platformed(arm, "linux", "arm64")])
    write_layout(layout, [tagged(index, "v1")])
    source = f"{registry.host}/src/multi:1"
    slimmer.slim(f"oci:{layout}:v1", source, PASS_THROUGH)
    key = load_private_key_file(keys["k1"])
    child = json.loads(get_manifest(registry, "src/multi", "1") or b"")["manifests"][1]["digest"]
    dest = f"{registry.host}/rel/multi:1"
    with Repository.open(parse_registry_reference(source), push=True) as repo:
        # A signature on the arm64 manifest does not vouch for the index, even for arm64 only.
        sign_remote(repo, child, key)
        r = cli("push", source, dest, "--verify-key", keys["k1.pub"], "--platform", "linux/arm64")
        assert "no signature for" in one_line_error(r)
        assert not tag_exists(registry, dest)

        sign_remote(repo, digest_of(registry, source), key)   # cosign signs the index digest
        r = cli("push", source, dest, "--verify-key", keys["k1.pub"], "--platform", "linux/arm64")
        assert r.exit_code == 0, r.output


# --- tampering ------------------------------------------------------------------------------

@dataclass
class Tamper:
    """Where the signature being tampered with lives, and the honest signer's key."""

    registry: Registry
    repository: str
    key: Path

    def replace_with_signed(self, doc: dict[str, Any], reference: str, digest: str) -> None:
        """A valid signature by the key, but over a payload for ``reference``/``digest``."""
        key = load_private_key_file(self.key)
        payload = build_payload(reference, digest)
        manifest = build_signature_manifest([SignatureEntry(payload,
                                                            sign_payload(key, payload))])
        for data in manifest.blobs.values():
            put_blob(self.registry, self.repository, data)
        doc.clear()
        doc.update(json.loads(manifest.manifest))


def _flip_signature(doc: dict[str, Any], t: Tamper) -> None:
    annotations = doc["layers"][0]["annotations"]
    sig = annotations[SIGNATURE_ANNOTATION]
    i = len(sig) // 2
    annotations[SIGNATURE_ANNOTATION] = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]


def _modify_payload(doc: dict[str, Any], t: Tamper) -> None:
    layer = doc["layers"][0]
    payload = get_blob(t.registry, t.repository, layer["digest"])
    changed = payload.replace(b'"compression":"keep"', b'"compression":"zstd"')
    assert changed != payload
    layer["digest"] = put_blob(t.registry, t.repository, changed)
    layer["size"] = len(changed)


def _corrupt_stored_payload(doc: dict[str, Any], t: Tamper) -> None:
    path = t.registry.blob_data(doc["layers"][0]["digest"])
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))


def _other_digest(doc: dict[str, Any], t: Tamper) -> None:
    other = digest_of(t.registry, f"{t.registry.host}/src/unsigned:1")
    t.replace_with_signed(doc, f"{t.registry.host}/{t.repository}", other)


def _other_repository(doc: dict[str, Any], t: Tamper) -> None:
    digest = digest_of(t.registry, f"{t.registry.host}/{t.repository}:1")
    t.replace_with_signed(doc, f"{t.registry.host}/someone/else", digest)


def get_blob(registry: Registry, repository: str, digest: str) -> bytes:
    r = httpx.get(api(registry, repository, f"blobs/{digest}"), follow_redirects=True)
    assert r.status_code == 200
    return r.content


TAMPER = {
    "signature-byte": (_flip_signature, "signature does not verify"),
    "payload-modified": (_modify_payload, "signature does not verify"),
    "payload-byte-in-storage": (_corrupt_stored_payload, "digest mismatch"),
    "signature-for-another-digest": (_other_digest, "signed image sha256:"),
    "signature-for-another-repository": (_other_repository, "signed for repository"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_signatures_are_rejected(registry: Registry, keys: dict[str, Path],
                                          signed_source: str, unsigned_source: str,
                                          case: str) -> None:
    repository = f"tamper/{case}"
    image = copy_signed(registry, signed_source, f"{registry.host}/{repository}:1", keys["k1"])
    assert cli("verify", image, "--key", keys["k1.pub"]).exit_code == 0

    tamper, reason = TAMPER[case]
    doc = sig_doc(registry, image)
    tamper(doc, Tamper(registry, repository, keys["k1"]))
    put_manifest(registry, repository, signature_tag(digest_of(registry, image)), doc)

    assert reason in one_line_error(cli("verify", image, "--key", keys["k1.pub"]))
    dest = f"{registry.host}/tamper-out/{case}:1"
    line = one_line_error(cli("push", image, dest, "--verify-key", keys["k1.pub"]))
    assert reason in line and line.startswith(f"slim: error: verifying source {image}")
    assert not tag_exists(registry, dest)


# --- two signatures -------------------------------------------------------------------------

def test_two_keys_two_pushes_append(registry: Registry, keys: dict[str, Path],
                                    signed_source: str) -> None:
    dest = f"{registry.host}/rel/two:1"
    assert cli("push", signed_source, dest, "--sign-key", keys["k1"]).exit_code == 0
    first = sig_doc(registry, dest)["layers"]
    env = {"SLIM_TEST_KEY_PASSWORD": PASSWORD}
    r = cli("push", signed_source, dest, "--sign-key", keys["k2"],
            "--sign-key-password-env", "SLIM_TEST_KEY_PASSWORD", env=env)
    assert r.exit_code == 0, r.output
    assert "2 signatures" in r.stdout and "report: " in r.stdout and "already attached" in r.stdout
    layers = sig_doc(registry, dest)["layers"]
    assert len(layers) == 2 and layers[0] == first[0]     # appended, first layer untouched

    for key in ("k1.pub", "k2.pub"):
        assert cli("verify", dest, "--key", keys[key]).exit_code == 0
    r = cli("verify", dest, "--key", keys["k1.pub"], "--key", keys["k2.pub"], "--json")
    doc = json.loads(r.stdout)
    assert doc["valid"] == 2 and len({s["key"]["id"] for s in doc["signatures"]}) == 2

    # Signing again with k1 (password from a file this time for k2 below) adds nothing.
    assert "already signed" in cli("push", signed_source, dest, "--sign-key", keys["k1"]).stdout
    assert len(sig_doc(registry, dest)["layers"]) == 2
    pw = keys["k2"].parent / "password"
    pw.write_text(PASSWORD + "\n")
    r = cli("push", signed_source, dest, "--sign-key", keys["k2"],
            "--sign-key-password-file", pw)
    assert r.exit_code == 0 and "already signed" in r.stdout
    index = get_manifest(registry, "rel/two", referrers_tag(digest_of(registry, dest)))
    assert index is not None and len(json.loads(index)["manifests"]) == 1


# --- the report ------------------------------------------------------------------------------

def test_report_attached_and_fetched(registry: Registry, keys: dict[str, Path],
                                     tmp_path: Path) -> None:
    dest = f"{registry.host}/rel/report:1"
    r = cli("push", EXAMPLE, dest, "--sign-key", keys["k1"], "--json", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    pushed = json.loads((tmp_path / "r.json").read_text())
    assert pushed["images"][0]["removed"], "the example image has files to strip"

    r = cli("report", dest, "--json")
    assert r.exit_code == 0, r.output
    # The attached report describes the image: without the run's layer-cache details.
    assert json.loads(r.stdout) == Report.from_dict(pushed).to_dict(run_details=False)
    assert cli("report", dest, "--json", "--key", keys["k1.pub"]).stdout == r.stdout
    human = cli("report", dest)
    assert human.exit_code == 0 and "removed by rule:" in human.stdout
    assert f"-> {dest}" in human.stdout
    assert Report.from_dict(pushed).to_dict() == pushed

    # CNCF distribution 2.8 has no referrers API: the fallback tag index lists the artifact.
    digest = digest_of(registry, dest)
    assert httpx.get(api(registry, "rel/report", f"referrers/{digest}")).status_code == 404
    index = json.loads(get_manifest(registry, "rel/report", referrers_tag(digest)) or b"")
    assert index["mediaType"] == OCI_INDEX
    [entry] = index["manifests"]
    assert entry["artifactType"] == REPORT_ARTIFACT_TYPE
    artifact = json.loads(get_manifest(registry, "rel/report", entry["digest"]) or b"")
    assert artifact["subject"]["digest"] == digest
    report_blob = get_blob(registry, "rel/report", artifact["layers"][0]["digest"])
    assert json.loads(report_blob) == Report.from_dict(pushed).to_dict(run_details=False)
    # ... and the signature records the report's digest.
    r = cli("verify", dest, "--key", keys["k1.pub"], "-a",
            f"report={sha256_digest(report_blob)}")
    assert r.exit_code == 0, r.output


def test_report_missing_and_not_attached(registry: Registry, keys: dict[str, Path],
                                         unsigned_source: str, signed_source: str) -> None:
    assert "no report attached" in one_line_error(cli("report", unsigned_source))
    dest = f"{registry.host}/rel/no-report:1"
    assert cli("push", signed_source, dest, "--no-attach-report").exit_code == 0
    assert "no report attached" in one_line_error(cli("report", dest))
    # a signed image whose signature records no report: --key refuses to pick one
    line = one_line_error(cli("report", signed_source, "--key", keys["k1.pub"]))
    assert "no valid signature records a report digest" in line


class ReferrersTransport(httpx.BaseTransport):
    """The real registry plus a referrers API kept here: manifest PUTs with a ``subject`` are
    answered with ``OCI-Subject`` and listed by ``GET /v2/<name>/referrers/<digest>``."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.referrers: dict[str, list[dict[str, Any]]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and "/referrers/" in path:
            digest = path.rsplit("/", 1)[1]
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                               "manifests": self.referrers.get(digest, [])}).encode()
            return httpx.Response(200, content=body, headers={"Content-Type": OCI_INDEX})
        response = self._inner.handle_request(request)
        if request.method == "PUT" and "/manifests/" in path and response.status_code == 201:
            doc = json.loads(request.read())
            if "subject" in doc:
                from slimmer.trust import referrer_descriptor
                self.referrers.setdefault(doc["subject"]["digest"], []).append(
                    referrer_descriptor(request.read()))
                response.headers["OCI-Subject"] = doc["subject"]["digest"]
        return response


def test_referrers_api_when_the_registry_has_one(registry: Registry) -> None:
    transport = ReferrersTransport()
    options = RegistryOptions(transport=transport, docker_config=False)
    dest = f"{registry.host}/rel/api:1"
    report = slimmer.slim(EXAMPLE, dest, registry=options, trust=TrustOptions())
    [attached] = report.attachments
    assert attached.kind == "report" and attached.note == "referrers API"
    digest = digest_of(registry, dest)
    assert get_manifest(registry, "rel/api", referrers_tag(digest)) is None   # no fallback tag
    with Repository.open(parse_registry_reference(dest), options) as repo:
        assert json.loads(fetch_report(repo, digest)) == report.to_dict(run_details=False)


class RejectingTransport(httpx.BaseTransport):
    """Refuses manifests that have a ``subject`` (some registries refuse unknown artifacts)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/manifests/" in request.url.path \
                and b'"subject"' in request.read():
            body = b'{"errors":[{"code":"MANIFEST_INVALID","message":"artifacts not allowed"}]}'
            return httpx.Response(400, content=body,
                                  headers={"Content-Type": "application/json"})
        return self._inner.handle_request(request)


def test_registry_rejecting_the_artifact(registry: Registry, keys: dict[str, Path]) -> None:
    options = RegistryOptions(transport=RejectingTransport(), docker_config=False)
    dest = f"{registry.host}/rel/rejected:1"
    with pytest.raises(RegistryError) as err:
        slimmer.slim(EXAMPLE, dest, registry=options, trust=TrustOptions(sign_key=keys["k1"]))
    text = str(err.value)
    assert "\n" not in text and err.value.exit_code == 1
    assert "was pushed, but attaching the report" in text and "artifacts not allowed" in text
    # The image is there; it is not signed, because signing comes after the report.
    digest = digest_of(registry, dest)
    assert get_manifest(registry, "rel/rejected", signature_tag(digest)) is None


# --- real cosign signatures through the registry ------------------------------------------------

def test_real_cosign_signature_fetched_from_the_registry(registry: Registry) -> None:
    digest = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    payload = (VECTORS / "v1.payload.json").read_bytes()
    manifest = build_signature_manifest([
        SignatureEntry(payload, (VECTORS / "v1.sig").read_text().strip()),
        SignatureEntry(payload, (VECTORS / "v2.sig").read_text().strip())])
    for data in manifest.blobs.values():
        put_blob(registry, "vectors/app", data)
    put_manifest(registry, "vectors/app", signature_tag(digest), manifest.manifest)
    key = TrustOptions(verify_keys=(VECTORS / "cosign.pub",)).load().public_keys
    ref = parse_registry_reference(f"{registry.host}/vectors/app@{digest}")
    with Repository.open(ref) as repo:
        result = verify_remote(repo, digest, key, check_reference=False)
        assert len(result.valid) == 2
        # Signed for 192.168.64.2:5000/cosign-signed-single-sample, not this repository.
        result = verify_remote(repo, digest, key)
        assert not result.valid and "signed for repository" in (result.checks[0].reason or "")
        other = TrustOptions(verify_keys=(VECTORS / "cosign2.pub",)).load().public_keys
        assert not verify_remote(repo, digest, other, check_reference=False).valid


# --- bad input ---------------------------------------------------------------------------------

BAD_KEYS: dict[str, tuple[list[str], dict[str, str], str]] = {
    "missing sign key": (["--sign-key", "{tmp}/nope.pem"], {},
                         "reading private key {tmp}/nope.pem: No such file"),
    "missing verify key": (["--verify-key", "{tmp}/nope.pub"], {},
                           "reading public key {tmp}/nope.pub"),
    "unreadable key": (["--sign-key", "{garbage}"], {}, "not a PEM file"),
    "public key given to sign": (["--sign-key", "{k1pub}"], {}, "no private key block"),
    "private key given to verify": (["--verify-key", "{k1}"], {}, "is a private key"),
    "no password": (["--sign-key", "{k2}"], {}, "key is encrypted and no password"),
    "wrong password": (["--sign-key", "{k2}", "--sign-key-password-env", "PW"],
                       {"PW": "wrong"}, "wrong password"),
    "unset password variable": (["--sign-key", "{k2}", "--sign-key-password-env", "PW_UNSET"],
                                {}, "environment variable PW_UNSET is not set"),
    "cosign key": (["--sign-key", "{cosign}", "--sign-key-password-env", "PW"],
                   {"PW": "hello"}, "cosign import-key-pair"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_keys_are_one_line_errors_and_push_nothing(registry: Registry,
                                                       keys: dict[str, Path],
                                                       signed_source: str, tmp_path: Path,
                                                       case: str) -> None:
    flags, env, message = BAD_KEYS[case]
    names = {"tmp": str(tmp_path), "garbage": str(keys["garbage"]), "k1": str(keys["k1"]),
             "k1pub": str(keys["k1.pub"]), "k2": str(keys["k2"]),
             "cosign": str(VECTORS / "encrypted-sigstore.key")}
    dest = f"{registry.host}/bad/{case.replace(' ', '-')}:1"
    r = cli("push", signed_source, dest, *[f.format(**names) for f in flags],
            env=env)
    assert message.format(**names) in one_line_error(r)
    assert httpx.get(api(registry, f"bad/{case.replace(' ', '-')}", "tags/list")).status_code \
        == 404


def test_layout_references_are_usage_errors(keys: dict[str, Path], tmp_path: Path) -> None:
    out = f"oci:{tmp_path}/out:1"
    line = one_line_error(cli("push", EXAMPLE, out, "--sign-key", keys["k1"]), code=2)
    assert "signing needs a registry destination" in line
    line = one_line_error(cli("push", EXAMPLE, out, "--attach-report"), code=2)
    assert "attaching the report needs a registry destination" in line
    line = one_line_error(cli("push", EXAMPLE, out, "--verify-key", keys["k1.pub"]), code=2)
    assert "needs a registry source" in line
    assert not (tmp_path / "out").exists()
    assert cli("push", EXAMPLE, out).exit_code == 0          # default: no report for layouts
    assert "needs a registry reference" in one_line_error(cli("report", out), code=2)
    line = one_line_error(cli("verify", out, "--key", keys["k1.pub"]), code=2)
    assert "needs a registry reference" in line
    line = one_line_error(cli("verify", "example.org/a:1", "--key", keys["k1.pub"], "-a",
                              "novalue"), code=2)
    assert "-a must be KEY=VALUE" in line


def test_trust_options_api(keys: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match="set by slimmer itself"):
        TrustOptions(sign_annotations=(("source", "x"),))
    with pytest.raises(UsageError, match="password was given without a sign key"):
        TrustOptions(sign_key_password_env="PW")
    loaded = TrustOptions(verify_keys=keys["k1.pub"],  # type: ignore[arg-type]  # one is OK
                          sign_key=keys["k2"],
                          sign_key_password_env="PW", environ={"PW": PASSWORD}).load()
    assert loaded.loaded and loaded.load() is loaded and len(loaded.public_keys) == 1
    assert loaded.private_key is not None and loaded.sign_key_password_env is None
    with pytest.raises(UsageError, match="not loaded"):
        _ = TrustOptions(verify_keys=(keys["k1.pub"],)).public_keys
    with pytest.raises(TrustError, match="wrong password"):
        TrustOptions(sign_key=keys["k2"], sign_key_password_env="PW",
                     environ={"PW": "nope"}).load()
