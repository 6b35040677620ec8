"""Trust core: keys, cosign payloads and signatures (incl. real cosign vectors), .sig manifests,
the report artifact and the referrers fallback index. No registry, no network."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from slimmer.errors import BlobError, SlimmerError, TrustError
from slimmer.oci.media import OCI_INDEX, OCI_MANIFEST
from slimmer.oci.model import Descriptor
from slimmer.trust import (
    SIGNATURE_ANNOTATION,
    SignatureEntry,
    append_signature,
    build_payload,
    build_report_artifact,
    build_signature_manifest,
    list_referrers,
    load_private_key,
    load_private_key_file,
    load_public_key,
    load_public_key_file,
    normalize_repository,
    parse_payload,
    read_password,
    referrer_descriptor,
    referrers_tag,
    report_layer,
    same_repository,
    sign_payload,
    signature_tag,
    update_referrers_index,
    verify_image_signatures,
    verify_signature,
)
from slimmer.trust.keys import ECDSA_P256_SHA256, ED25519, RSA_PKCS1V15_SHA256
from slimmer.trust.referrers import EMPTY_DIGEST, REPORT_ARTIFACT_TYPE

from support import REPO

VECTORS = REPO / "testdata" / "cosign"
DIGEST_V1 = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
DIGEST_V3 = "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
REF_V1 = "192.168.64.2:5000/cosign-signed-single-sample"
REF_V3 = "192.168.64.2:5000/cosign-signed/key-1"
OTHER_DIGEST = "sha256:" + "ab" * 32
REPO = "registry.example:5000/team/app"


def vec(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def vsig(name: str) -> str:
    return vec(name).decode().strip()


# --- keys made on the fly ---------------------------------------------------------------------

def _pem_private(key, fmt=serialization.PrivateFormat.PKCS8,
                 password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def _pem_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def raw_keys():
    return {ECDSA_P256_SHA256: ec.generate_private_key(ec.SECP256R1()),
            RSA_PKCS1V15_SHA256: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ED25519: ed25519.Ed25519PrivateKey.generate()}


@pytest.fixture(scope="module")
def ec_pair(raw_keys):
    raw = raw_keys[ECDSA_P256_SHA256]
    return load_private_key(_pem_private(raw)), load_public_key(_pem_public(raw))


@pytest.fixture(scope="module")
def ec_pair2():
    raw = ec.generate_private_key(ec.SECP256R1())
    return load_private_key(_pem_private(raw)), load_public_key(_pem_public(raw))


class Blobs(dict):
    """An in-memory blob store with the fetch_blob signature."""

    def fetch(self, digest: str) -> bytes:
        if digest not in self:
            raise BlobError(f"blob {digest[:19]} not found")
        return self[digest]


def signed_manifest(pairs, payloads):
    """A .sig manifest with one layer per (private key, payload), plus its blob store."""
    entries = [SignatureEntry(p, sign_payload(k, p)) for (k, _), p in zip(pairs, payloads)]
    sm = build_signature_manifest(entries)
    return sm, Blobs(sm.blobs)


# --- real cosign vectors ----------------------------------------------------------------------

def test_vector_manifests_hash_to_their_digests():
    assert "sha256:" + hashlib.sha256(vec("image-634a8f35.manifest.json")).hexdigest() == DIGEST_V1
    assert "sha256:" + hashlib.sha256(vec("image-0489474d.manifest.json")).hexdigest() == DIGEST_V3


@pytest.mark.parametrize("name,good,bad", [("v1", "cosign.pub", "cosign2.pub"),
                                           ("v2", "cosign.pub", "cosign2.pub"),
                                           ("v3", "cosign2.pub", "cosign.pub")])
def test_real_cosign_signatures_verify_with_their_key_only(name, good, bad):
    payload, sig = vec(f"{name}.payload.json"), vsig(f"{name}.sig")
    assert verify_signature(load_public_key_file(VECTORS / good), payload, sig)
    assert not verify_signature(load_public_key_file(VECTORS / bad), payload, sig)


def test_negative_vector_fails_with_both_keys():
    payload, sig = vec("neg-unknown-key.payload.json"), vsig("neg-unknown-key.sig")
    for key in ("cosign.pub", "cosign2.pub"):
        assert not verify_signature(load_public_key_file(VECTORS / key), payload, sig)


def test_real_payloads_parse_and_are_rebuilt_byte_for_byte():
    for name, ref, digest in (("v1", REF_V1, DIGEST_V1), ("v3", REF_V3, DIGEST_V3)):
        raw = vec(f"{name}.payload.json")
        parsed = parse_payload(raw)
        assert (parsed.docker_reference, parsed.manifest_digest) == (ref, digest)
        assert parsed.optional is None
        assert build_payload(ref, digest) == raw


def test_real_signatures_in_a_sig_manifest_both_verify_and_negative_is_rejected():
    key = load_public_key_file(VECTORS / "cosign.pub")
    sm = build_signature_manifest([
        SignatureEntry(vec("v1.payload.json"), vsig("v1.sig")),
        SignatureEntry(vec("v2.payload.json"), vsig("v2.sig")),
        SignatureEntry(vec("neg-unknown-key.payload.json"), vsig("neg-unknown-key.sig"))])
    result = verify_image_signatures(sm.manifest, Blobs(sm.blobs).fetch, DIGEST_V1, [key],
                                     expected_reference=REF_V1 + ":latest")
    assert [c.ok for c in result.checks] == [True, True, False]
    assert all(c.key == key for c in result.valid)
    assert "does not verify" in result.rejected[0].reason
    assert "valid" in result.checks[0].describe() and REF_V1 in result.checks[0].describe()


def test_real_v3_signature_with_bundle_annotation_verifies():
    key2 = load_public_key_file(VECTORS / "cosign2.pub")
    bundle = json.dumps(json.loads(vec("v3.bundle.json")), separators=(",", ":"))
    sm = build_signature_manifest([SignatureEntry(vec("v3.payload.json"), vsig("v3.sig"),
                                                  {"dev.sigstore.cosign/bundle": bundle})])
    result = verify_image_signatures(sm.manifest, Blobs(sm.blobs).fetch, DIGEST_V3, [key2],
                                     expected_reference=REF_V3)
    assert len(result.valid) == 1
    # The same signature does not vouch for the other image.
    other = verify_image_signatures(sm.manifest, Blobs(sm.blobs).fetch, DIGEST_V1, [key2])
    assert not other.valid and "signed image" in other.checks[0].reason


def test_encrypted_sigstore_key_gives_one_line_nacl_error():
    with pytest.raises(TrustError) as err:
        load_private_key_file(VECTORS / "encrypted-sigstore.key")
    msg = str(err.value)
    assert "\n" not in msg
    assert "ENCRYPTED SIGSTORE PRIVATE KEY" in msg and "NaCl" in msg
    assert "cosign import-key-pair" in msg and "encrypted-sigstore.key" in msg
    legacy = vec("encrypted-sigstore.key").replace(b"SIGSTORE", b"COSIGN")
    with pytest.raises(TrustError, match="NaCl"):
        load_private_key(legacy, b"hello")


# --- keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", [ECDSA_P256_SHA256, RSA_PKCS1V15_SHA256, ED25519])
def test_sign_verify_round_trip_for_each_key_type(raw_keys, algorithm):
    raw = raw_keys[algorithm]
    priv = load_private_key(_pem_private(raw))
    pub = load_public_key(_pem_public(raw))
    assert priv.algorithm == pub.algorithm == algorithm
    assert priv.public.key_id == pub.key_id
    payload = build_payload(REPO, OTHER_DIGEST, {"source": "x"})
    sig = sign_payload(priv, payload)
    assert verify_signature(pub, payload, sig)
    assert not verify_signature(pub, payload + b" ", sig)
    sm, blobs = signed_manifest([(priv, pub)], [payload])
    assert verify_image_signatures(sm.manifest, blobs.fetch, OTHER_DIGEST, [pub]).valid


def test_private_key_formats_and_passwords(raw_keys, tmp_path):
    raw = raw_keys[ECDSA_P256_SHA256]
    sec1 = _pem_private(raw, serialization.PrivateFormat.TraditionalOpenSSL)
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert load_private_key(sec1).algorithm == ECDSA_P256_SHA256
    # openssl ecparam -genkey writes an EC PARAMETERS block first.
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert load_private_key(params + sec1).algorithm == ECDSA_P256_SHA256

    enc = _pem_private(raw, password=b"s3cret")
    assert enc.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key_file = tmp_path / "k.pem"
    key_file.write_bytes(enc)
    by_env = load_private_key_file(key_file, password_env="SLIM_PW", environ={"SLIM_PW": "s3cret"})
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(b"s3cret\n")
    by_file = load_private_key_file(key_file, password_file=pw_file)
    assert by_env.public.key_id == by_file.public.key_id
    assert read_password(password_file=pw_file) == b"s3cret"

    with pytest.raises(TrustError, match="wrong password"):
        load_private_key_file(key_file, password_env="SLIM_PW", environ={"SLIM_PW": "nope"})
    with pytest.raises(TrustError, match="encrypted and no password"):
        load_private_key_file(key_file)
    with pytest.raises(TrustError, match="SLIM_PW is not set"):
        load_private_key_file(key_file, password_env="SLIM_PW", environ={})
    with pytest.raises(TrustError, match="not both"):
        read_password("SLIM_PW", pw_file, environ={"SLIM_PW": "x"})
    legacy = _pem_private(raw, serialization.PrivateFormat.TraditionalOpenSSL, b"s3cret")
    assert b"Proc-Type: 4,ENCRYPTED" in legacy
    assert load_private_key(legacy, b"s3cret").public.key_id == by_env.public.key_id
    with pytest.raises(TrustError, match="wrong password"):
        load_private_key(legacy, b"nope")
    # A password for an unencrypted key is harmless.
    assert load_private_key(sec1, b"unused").algorithm == ECDSA_P256_SHA256


def test_bad_key_inputs(raw_keys, tmp_path):
    with pytest.raises(TrustError, match="reading private key .*missing.pem"):
        load_private_key_file(tmp_path / "missing.pem")
    with pytest.raises(TrustError, match="reading public key"):
        load_public_key_file(tmp_path / "missing.pub")
    with pytest.raises(TrustError, match="not a PEM file"):
        load_public_key(b"hello")
    raw = raw_keys[ECDSA_P256_SHA256]
    with pytest.raises(TrustError, match="is a private key"):
        load_public_key(_pem_private(raw))
    with pytest.raises(TrustError, match="no private key block"):
        load_private_key(_pem_public(raw))
    with pytest.raises(TrustError, match="curve secp384r1 is not supported"):
        load_public_key(_pem_public(ec.generate_private_key(ec.SECP384R1())))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(TrustError, match="too small"):
        load_private_key(_pem_private(small))
    garbled = _pem_public(raw).replace(b"MFkw", b"MFkx")
    with pytest.raises(TrustError, match="unreadable public key"):
        load_public_key(garbled)
    assert "BEGIN" not in repr(load_private_key(_pem_private(raw)))


# --- payload ----------------------------------------------------------------------------------

def test_build_payload_is_deterministic_and_go_compatible():
    a = build_payload(REPO, OTHER_DIGEST, {"b": "2", "a": "<&>", "n": 3})
    assert a == build_payload(REPO, OTHER_DIGEST, {"n": 3, "a": "<&>", "b": "2"})
    assert b'"optional":{"a":"\\u003c\\u0026\\u003e","b":"2","n":3}' in a
    assert parse_payload(a).optional == {"a": "<&>", "b": "2", "n": 3}
    with pytest.raises(TrustError, match="floating-point"):
        build_payload(REPO, OTHER_DIGEST, {"x": 1.5})
    with pytest.raises(TrustError, match="malformed digest"):
        build_payload(REPO, "sha256:nothex")


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(extra=1), "unexpected field"),
    (lambda d: d.pop("critical"), "missing field 'critical'"),
    (lambda d: d["critical"].update(type="atomic container signature"), "critical.type"),
    (lambda d: d["critical"]["identity"].update(extra="x"), "unexpected extra"),
    (lambda d: d["critical"]["image"].pop("docker-manifest-digest"), "missing docker-manifest"),
    (lambda d: d["critical"]["image"].update({"docker-manifest-digest": "sha256:12"}), "malformed"),
    (lambda d: d["critical"]["identity"].update({"docker-reference": 5}), "non-empty string"),
    (lambda d: d.update(optional=[1]), "optional must be an object"),
])
def test_parse_payload_is_strict(mutate, match):
    doc = json.loads(build_payload(REPO, OTHER_DIGEST))
    mutate(doc)
    with pytest.raises(TrustError, match=match):
        parse_payload(json.dumps(doc).encode())


def test_parse_payload_rejects_duplicate_keys_and_non_json():
    raw = build_payload(REPO, OTHER_DIGEST).replace(
        b'"type"', b'"type":"cosign container image signature","type"', 1)
    with pytest.raises(TrustError, match="duplicate key"):
        parse_payload(raw)
    with pytest.raises(TrustError, match="not valid JSON"):
        parse_payload(b"\xff")
    doc = json.loads(build_payload(REPO, OTHER_DIGEST))
    del doc["optional"]
    assert parse_payload(json.dumps(doc).encode()).optional is None


# --- tampering --------------------------------------------------------------------------------

def test_tampered_payload_byte_is_rejected(ec_pair):
    priv, pub = ec_pair
    payload = build_payload(REPO, OTHER_DIGEST)
    sig = sign_payload(priv, payload)
    for i in range(0, len(payload), 7):
        bad = bytearray(payload)
        bad[i] ^= 0x01
        assert not verify_signature(pub, bytes(bad), sig)


def test_tampered_signature_byte_is_rejected(ec_pair):
    priv, pub = ec_pair
    payload = build_payload(REPO, OTHER_DIGEST)
    raw = base64.b64decode(sign_payload(priv, payload))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x80
        assert not verify_signature(pub, payload, base64.b64encode(bytes(bad)).decode())
    assert not verify_signature(pub, payload, "not base64!")
    assert not verify_signature(pub, payload, "")


def test_verify_image_signatures_rejections(ec_pair, ec_pair2):
    priv, pub = ec_pair
    _, other_pub = ec_pair2
    payload = build_payload(REPO, OTHER_DIGEST, {"source": "sha256:src"})
    sm, blobs = signed_manifest([ec_pair], [payload])

    def reason(**kw):
        args = dict(signature_manifest=sm.manifest, fetch_blob=blobs.fetch,
                    image_digest=OTHER_DIGEST, public_keys=[pub])
        args.update(kw)
        result = verify_image_signatures(**args)
        return None if result.valid else result.checks[0].reason

    assert reason() is None
    assert reason(expected_reference=REPO + ":v1") is None
    assert reason(required_annotations={"source": "sha256:src"}) is None
    assert "does not verify" in reason(public_keys=[other_pub])
    assert reason(public_keys=[other_pub, pub]) is None
    assert "signed image" in reason(image_digest="sha256:" + "cd" * 32)
    assert "signed for repository" in reason(expected_reference="registry.example:5000/team/other")
    assert "missing" in reason(required_annotations={"creator": "me"})
    assert "expected" in reason(required_annotations={"source": "sha256:other"})

    # The registry hands back other bytes than the descriptor names.
    digest = json.loads(sm.manifest)["layers"][0]["digest"]
    forged = Blobs(blobs)
    forged[digest] = payload.replace(b"team/app", b"team/evil")
    assert "does not match its descriptor" in reason(fetch_blob=forged.fetch)
    assert "not found" in reason(fetch_blob=Blobs().fetch)

    # A forged layer annotation (signature of a different payload) is rejected.
    doc = json.loads(sm.manifest)
    doc["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = sign_payload(
        priv, build_payload(REPO, "sha256:" + "cd" * 32))
    assert "does not verify" in reason(signature_manifest=json.dumps(doc).encode())

    with pytest.raises(TrustError, match="no valid signature .*does not verify"):
        verify_image_signatures(sm.manifest, blobs.fetch, OTHER_DIGEST, [other_pub]).require_valid()


def test_verify_argument_and_manifest_errors(ec_pair):
    payload = build_payload(REPO, OTHER_DIGEST)
    sm, blobs = signed_manifest([ec_pair], [payload])
    with pytest.raises(TrustError, match="no public key"):
        verify_image_signatures(sm.manifest, blobs.fetch, OTHER_DIGEST, [])
    with pytest.raises(TrustError, match="malformed digest"):
        verify_image_signatures(sm.manifest, blobs.fetch, "latest", [ec_pair[1]])
    with pytest.raises(TrustError, match="not valid JSON"):
        verify_image_signatures(b"{", blobs.fetch, OTHER_DIGEST, [ec_pair[1]])
    doc = json.loads(sm.manifest)
    doc["layers"] = doc["layers"] * 1001
    with pytest.raises(TrustError, match="more than the 1000"):
        verify_image_signatures(json.dumps(doc).encode(), blobs.fetch, OTHER_DIGEST, [ec_pair[1]])
    doc["layers"] = [{"mediaType": "application/vnd.dev.cosign.attestation.v1+json",
                      "digest": OTHER_DIGEST, "size": 3}]
    result = verify_image_signatures(json.dumps(doc).encode(), blobs.fetch, OTHER_DIGEST,
                                     [ec_pair[1]])
    assert "media type" in result.checks[0].reason
    doc["layers"] = []
    with pytest.raises(TrustError, match="has no layers"):
        verify_image_signatures(json.dumps(doc).encode(), blobs.fetch, OTHER_DIGEST,
                                [ec_pair[1]]).require_valid()


# --- .sig manifest ----------------------------------------------------------------------------

def test_signature_tag():
    assert signature_tag(DIGEST_V1) == "sha256-" + DIGEST_V1[7:] + ".sig"
    with pytest.raises(TrustError):
        signature_tag("sha256:xyz")


def test_signature_manifest_layout(ec_pair):
    payload = build_payload(REPO, OTHER_DIGEST)
    sm, _ = signed_manifest([ec_pair], [payload])
    doc = json.loads(sm.manifest)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert doc["mediaType"] == OCI_MANIFEST
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    layer = doc["layers"][0]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert layer["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert layer["size"] == len(payload)
    assert verify_signature(ec_pair[1], payload, layer["annotations"][SIGNATURE_ANNOTATION])
    config = sm.blobs[doc["config"]["digest"]]
    assert len(config) == doc["config"]["size"]
    assert config == (b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":'
                      b'[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers",'
                      b'"diff_ids":["' + layer["digest"].encode() + b'"]},"config":{}}')
    assert sm.blobs[layer["digest"]] == payload
    assert sm.digest == "sha256:" + hashlib.sha256(sm.manifest).hexdigest()
    stamped = build_signature_manifest([SignatureEntry(payload, "AAAA")],
                                       created="2024-01-02T03:04:05Z")
    stamped_config = stamped.blobs[json.loads(stamped.manifest)["config"]["digest"]]
    assert b'"created":"2024-01-02T03:04:05Z"' in stamped_config
    docker = build_signature_manifest([SignatureEntry(payload, "AAAA")], docker_media_types=True)
    assert json.loads(docker.manifest)["config"]["mediaType"] == \
        "application/vnd.docker.container.image.v1+json"


def test_append_keeps_existing_layers_and_both_signatures_verify(ec_pair, ec_pair2):
    (priv1, pub1), (priv2, pub2) = ec_pair, ec_pair2
    bundle = {"dev.sigstore.cosign/bundle": '{"x":1}'}
    p1 = build_payload(REPO, OTHER_DIGEST, {"by": "one"})
    first = append_signature(None, p1, sign_payload(priv1, p1), annotations=bundle)
    p2 = build_payload(REPO, OTHER_DIGEST, {"by": "two"})
    second = append_signature(first.manifest, p2, sign_payload(priv2, p2), public_key=pub2)
    assert second.changed
    old_layers = json.loads(first.manifest)["layers"]
    new_layers = json.loads(second.manifest)["layers"]
    assert new_layers[:1] == old_layers and len(new_layers) == 2
    assert set(second.blobs) == {json.loads(second.manifest)["config"]["digest"],
                                 new_layers[1]["digest"]}
    config = json.loads(second.blobs[json.loads(second.manifest)["config"]["digest"]])
    assert config["rootfs"]["diff_ids"] == [d["digest"] for d in new_layers]
    store = Blobs({**first.blobs, **second.blobs})
    result = verify_image_signatures(second.manifest, store.fetch, OTHER_DIGEST, [pub1, pub2],
                                     expected_reference=REPO)
    assert [c.key for c in result.valid] == [pub1, pub2]
    assert [c.payload.optional["by"] for c in result.valid] == ["one", "two"]


def test_append_does_not_duplicate_a_signature(ec_pair):
    priv, pub = ec_pair
    payload = build_payload(REPO, OTHER_DIGEST)
    sig = sign_payload(priv, payload)
    first = append_signature(None, payload, sig)
    same = append_signature(first.manifest, payload, sig)
    assert not same.changed and same.manifest == first.manifest and not same.blobs
    # ECDSA is randomised: a fresh signature over the same payload is a duplicate only when the
    # signer's key shows the old one is by the same key (cosign's rule).
    fresh = sign_payload(priv, payload)
    assert fresh != sig
    assert not append_signature(first.manifest, payload, fresh, public_key=pub).changed
    assert append_signature(first.manifest, payload, fresh).changed
    # New annotations make it a different signature.
    assert append_signature(first.manifest, payload, sig, annotations={"k": "v"}).changed


def test_append_rejects_a_foreign_document():
    with pytest.raises(TrustError, match="not a schema 2 image manifest"):
        append_signature(b'{"manifests":[]}', b"{}", "AAAA")
    with pytest.raises(TrustError, match="not valid base64"):
        append_signature(None, b"{}", "***")


# --- references -------------------------------------------------------------------------------

@pytest.mark.parametrize("ref,want", [
    ("busybox", "docker.io/library/busybox"),
    ("busybox:1.36", "docker.io/library/busybox"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox"),
    ("docker.io/busybox@sha256:" + "ab" * 32, "docker.io/library/busybox"),
    ("user/app:tag", "docker.io/user/app"),
    ("localhost:5000/a/b:c", "localhost:5000/a/b"),
    ("Reg.Example:5000/team/app@sha256:" + "ab" * 32, "reg.example:5000/team/app"),
    (REF_V1, REF_V1),
])
def test_normalize_repository(ref, want):
    assert normalize_repository(ref) == want


def test_same_repository():
    assert same_repository("index.docker.io/library/busybox", "busybox:latest")
    assert not same_repository("docker.io/library/busybox", "docker.io/other/busybox")
    assert not same_repository("reg.example/a", "reg.example:5000/a")
    assert not same_repository("UPPER/case", "upper/case")
    with pytest.raises(TrustError):
        normalize_repository("bad//ref")


# --- report artifact and referrers fallback ----------------------------------------------------

SUBJECT = Descriptor(OCI_MANIFEST, "sha256:" + "12" * 32, 1234)
CREATED = "2024-05-06T07:08:09Z"


def test_report_artifact_is_deterministic_and_well_formed():
    report = b'{"removed":[]}'
    extra = {"io.slimmer.source.digest": OTHER_DIGEST}
    art = build_report_artifact(report, SUBJECT, CREATED, extra)
    assert art.manifest == build_report_artifact(report, SUBJECT, CREATED, dict(extra)).manifest
    doc = json.loads(art.manifest)
    assert doc["artifactType"] == REPORT_ARTIFACT_TYPE
    assert doc["config"] == {"mediaType": "application/vnd.oci.empty.v1+json",
                             "digest": EMPTY_DIGEST, "size": 2}
    assert art.blobs[EMPTY_DIGEST] == b"{}"
    assert doc["subject"] == {"mediaType": OCI_MANIFEST, "digest": SUBJECT.digest, "size": 1234}
    assert doc["annotations"]["org.opencontainers.image.created"] == CREATED
    layer = report_layer(art.manifest)
    assert art.blobs[layer.digest] == report and layer.size == len(report)
    desc = art.descriptor
    assert desc == {"mediaType": OCI_MANIFEST, "digest": art.digest, "size": len(art.manifest),
                    "artifactType": REPORT_ARTIFACT_TYPE, "annotations": doc["annotations"]}
    with pytest.raises(TrustError, match="RFC 3339"):
        build_report_artifact(report, SUBJECT, "yesterday")
    with pytest.raises(TrustError, match="set from 'created'"):
        build_report_artifact(report, SUBJECT, CREATED, {"org.opencontainers.image.created": "x"})


def test_referrers_tag_follows_the_distribution_spec_examples():
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert referrers_tag("sha512:" + "a" * 128) == "sha512-" + "a" * 64
    odd = ("test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+"
           "overall+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLots"
           "OfCharactersToExcerciseEncodedTruncation")
    assert referrers_tag(odd) == ("test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSection"
                                  "ToShowHyphenReplacementAndLotsAndLot")
    with pytest.raises(TrustError):
        referrers_tag("nodigest")


def test_referrers_index_create_append_dedupe():
    a = build_report_artifact(b"{}", SUBJECT, CREATED)
    b = build_report_artifact(b'{"n":2}', SUBJECT, "2024-05-07T00:00:00Z")
    first = update_referrers_index(None, a.descriptor)
    assert first.changed
    doc = json.loads(first.raw)
    assert doc["mediaType"] == OCI_INDEX and doc["schemaVersion"] == 2
    assert doc["manifests"] == [a.descriptor]
    again = update_referrers_index(first.raw, a.descriptor)
    assert not again.changed and again.raw == first.raw
    foreign = {"mediaType": OCI_MANIFEST, "digest": OTHER_DIGEST, "size": 9,
               "artifactType": "application/example"}
    both = update_referrers_index(update_referrers_index(first.raw, foreign).raw, b.descriptor)
    assert [d["digest"] for d in json.loads(both.raw)["manifests"]] == \
        [a.digest, OTHER_DIGEST, b.digest]
    reports = list_referrers(both.raw, REPORT_ARTIFACT_TYPE)
    assert [d.digest for d in reports] == [a.digest, b.digest]
    assert len(list_referrers(both.raw)) == 3
    with pytest.raises(TrustError, match="not an OCI image index"):
        update_referrers_index(b'{"schemaVersion": 2, "layers": []}', a.descriptor)
    with pytest.raises(TrustError, match="not an OCI image index"):
        update_referrers_index(a.manifest, a.descriptor)


def test_referrer_descriptor_falls_back_to_config_media_type(ec_pair):
    sm, _ = signed_manifest([ec_pair], [build_payload(REPO, OTHER_DIGEST)])
    desc = referrer_descriptor(sm.manifest)
    assert desc["artifactType"] == "application/vnd.oci.image.config.v1+json"
    assert "annotations" not in desc


def test_trust_error_is_a_slimmer_error_with_exit_code_1():
    assert issubclass(TrustError, SlimmerError) and TrustError.exit_code == 1
