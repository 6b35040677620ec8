"""Registry client, auth, source and sink against an in-memory registry (httpx.MockTransport):
the protocol details that a real registry does not let us provoke."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from slimmer.errors import AuthError, BlobError, NotFoundError, RegistryError, UsageError
from slimmer.oci.image import BlobOrigin
from slimmer.oci.media import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from slimmer.oci.model import Descriptor, dump_json
from slimmer.oci.refs import RegistryRef
from slimmer.transports.registry import RegistryOptions, RegistrySink, RegistrySource
from slimmer.transports.registry.auth import covers, merge_scopes, parse_challenges
from slimmer.transports.registry.credentials import find_credentials
from slimmer.transports.registry.options import Credentials, slimmer_version

from support.fakeregistry import HOST, FakeRegistry, sha

REF = RegistryRef(HOST, "team/app", "1.0")


def _image(fake: FakeRegistry, payload: bytes = b"x" * 5000) -> tuple[str, bytes]:
    """Put a one-layer image under team/app:1.0; returns (layer digest, layer bytes)."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("file")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    tar = buf.getvalue()
    layer = gzip.compress(tar, mtime=0)
    cfg = dump_json({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}})
    fake.add_blob(layer)
    fake.add_blob(cfg)
    manifest = dump_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "digest": sha(cfg),
                                     "size": len(cfg)},
                          "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha(layer),
                                      "size": len(layer)}]})
    fake.add_manifest("1.0", manifest, OCI_MANIFEST)
    return sha(layer), layer


def _read_layer(source: RegistrySource) -> bytes:
    root = source.resolve()
    with root.images[0].layers[0].open_compressed() as stream:
        return stream.read()


# -- auth helpers -----------------------------------------------------------------------------

def test_parse_challenges() -> None:
    got = parse_challenges('Bearer realm="https://auth.io/token",service="reg.io",'
                           'scope="repository:a/b:pull,push repository:c:pull", Basic realm="x"')
    assert got == [("bearer", {"realm": "https://auth.io/token", "service": "reg.io",
                               "scope": "repository:a/b:pull,push repository:c:pull"}),
                   ("basic", {"realm": "x"})]
    assert parse_challenges('Basic realm="a \\"q\\""') == [("basic", {"realm": 'a "q"'})]


def test_scope_sets() -> None:
    merged = merge_scopes(["repository:a:pull", "repository:a:push", "repository:b:pull"])
    assert merged == {"repository:a:pull,push", "repository:b:pull"}
    assert covers(merged, ["repository:a:pull"])
    assert not covers(["repository:a:pull"], ["repository:a:pull,push"])
    assert not covers(merged, ["repository:c:pull"])


# -- pulling ----------------------------------------------------------------------------------

def test_source_streams_layers_with_origin() -> None:
    fake = FakeRegistry()
    digest, layer = _image(fake)
    source = RegistrySource(REF, fake.options())
    root = source.resolve()
    assert root.images[0].layers[0].origin == BlobOrigin(HOST, "team/app")
    assert _read_layer(source) == layer
    accept = fake.requests("GET", "/manifests/")[0].headers["accept"]
    for media_type in ("oci.image.index.v1", "oci.image.manifest.v1",
                       "docker.distribution.manifest.list.v2",
                       "docker.distribution.manifest.v2"):
        assert media_type in accept


def test_manifest_digest_header_mismatch() -> None:
    fake = FakeRegistry(wrong_digest_header=True)
    _image(fake)
    with pytest.raises(BlobError, match=r"reading reg.test/team/app:1.0 manifest: registry "
                                        r"says sha256:\w+ but the bytes are"):
        RegistrySource(REF, fake.options()).resolve()


def test_pull_by_digest_checks_the_bytes() -> None:
    fake = FakeRegistry()
    _image(fake)
    wanted = "sha256:" + "0" * 64
    fake.manifests[wanted] = fake.manifests["1.0"]
    ref = RegistryRef(HOST, "team/app", None, wanted)
    with pytest.raises(BlobError, match="not the requested digest"):
        RegistrySource(ref, fake.options()).resolve()


def test_unknown_tag_and_repo() -> None:
    fake = FakeRegistry()
    _image(fake)
    with pytest.raises(NotFoundError, match=r"reading reg.test/team/app:nope manifest: "
                                            r"MANIFEST_UNKNOWN"):
        RegistrySource(RegistryRef(HOST, "team/app", "nope"), fake.options()).resolve()


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_blob_redirect_does_not_leak_authorization(auth: str) -> None:
    """Neither the password nor a bearer token follows a blob redirect to another host."""
    if auth == "basic":
        fake = FakeRegistry(redirect_blobs=True, basic=("u", "p"))
    else:
        fake = FakeRegistry(redirect_blobs=True, bearer=True)
    _, layer = _image(fake)
    source = RegistrySource(REF, fake.options(creds="u:p"))
    assert _read_layer(source) == layer
    if auth == "bearer":
        assert any(r.headers.get("authorization", "").startswith("Bearer tok")
                   for r in fake.log if r.url.host != "storage.test")
    storage = [r for r in fake.log if r.url.host == "storage.test"]
    assert storage and all("authorization" not in r.headers for r in storage)


@pytest.mark.parametrize("ignore_range", [False, True])
def test_blob_stream_resumes_after_a_dropped_connection(ignore_range: bool) -> None:
    fake = FakeRegistry(ignore_range=ignore_range)
    digest, layer = _image(fake, os.urandom(20000))
    source = RegistrySource(REF, fake.options())
    root = source.resolve()
    fake.drop_blob_after = 1000
    with root.images[0].layers[0].open_compressed() as stream:
        assert stream.read() == layer
    gets = fake.requests("GET", f"/blobs/{digest}")
    assert len(gets) == 2
    assert gets[1].headers.get("range") == "bytes=1000-"


def test_truncated_blob_is_an_error_naming_the_blob() -> None:
    fake = FakeRegistry()
    digest, layer = _image(fake, os.urandom(5000))
    source = RegistrySource(REF, fake.options())
    root = source.resolve()
    fake.truncate_blobs = 100
    with pytest.raises(BlobError, match=rf"reading reg.test/team/app:1.0 blob {digest[:19]}: "
                                        rf"blob is 100 bytes, descriptor says {len(layer)}"):
        with root.images[0].layers[0].open_compressed() as stream:
            stream.read()


def test_retries_honour_retry_after_then_succeed() -> None:
    fake = FakeRegistry(fail_first=[503, 429], retry_after="0")
    _, layer = _image(fake)
    assert _read_layer(RegistrySource(REF, fake.options())) == layer


def test_retries_are_bounded() -> None:
    fake = FakeRegistry(fail_first=[503] * 10)
    _image(fake)
    with pytest.raises(RegistryError, match=r"manifest: UNAVAILABLE: try later \(HTTP 503\)"):
        RegistrySource(REF, fake.options(retries=2)).resolve()
    assert len(fake.log) == 3


def test_connection_errors_are_retried_then_reported() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused")
    options = RegistryOptions(transport=httpx.MockTransport(refuse), backoff=0.001, retries=2,
                              insecure=(HOST,), docker_config=False)
    with pytest.raises(RegistryError, match=r"reading reg.test/team/app:1.0 manifest: "
                                            r"connection to reg.test failed: ConnectError: "
                                            r"connection refused \(after 3 attempts\)"):
        RegistrySource(REF, options).resolve()
    assert len(calls) == 3


# -- auth -------------------------------------------------------------------------------------

def test_basic_auth() -> None:
    fake = FakeRegistry(basic=("alice", "s3cret"))
    _, layer = _image(fake)
    assert _read_layer(RegistrySource(REF, fake.options(creds="alice:s3cret"))) == layer
    with pytest.raises(AuthError, match="reading reg.test/team/app:1.0 manifest: reg.test "
                                        "refused the username or password"):
        RegistrySource(REF, fake.options(creds="alice:wrong")).resolve()
    with pytest.raises(AuthError, match="requires a login"):
        RegistrySource(REF, fake.options()).resolve()


def test_bearer_tokens_cached_by_scope_set() -> None:
    fake = FakeRegistry(bearer=True)
    _, layer = _image(fake)
    source = RegistrySource(REF, fake.options(creds="u:p"))
    assert _read_layer(source) == layer
    assert [t["scopes"] for t in fake.tokens] == [["repository:team/app:pull"]]
    assert fake.tokens[0]["auth"].startswith("Basic ")
    token_request = [r for r in fake.log if r.url.host == "auth.test"][0]
    assert token_request.url.params["service"] == "fake"
    assert token_request.url.params["account"] == "u"


def test_expired_tokens_are_renewed() -> None:
    fake = FakeRegistry(bearer=True, token_ttl=0)
    _image(fake)
    _read_layer(RegistrySource(REF, fake.options()))
    # manifest, config, layer: each request outlives the zero-lifetime token before it
    assert len(fake.tokens) >= 3


def test_push_token_has_one_scope_parameter_per_scope_for_mounts() -> None:
    fake = FakeRegistry(bearer=True)
    blob = fake.add_blob(b"shared layer")
    sink = RegistrySink(RegistryRef(HOST, "team/app-slim", "1"), fake.options())
    sink.copy_blob(Descriptor(OCI_LAYER_GZIP, blob, 12), _never, BlobOrigin(HOST, "team/app"))
    mount = fake.requests("POST", "mount=")[0]
    assert mount.url.params["from"] == "team/app" and mount.url.params["mount"] == blob
    last = [r for r in fake.log if r.url.host == "auth.test"][-1]
    assert sorted(last.url.params.get_list("scope")) == ["repository:team/app-slim:pull,push",
                                                        "repository:team/app:pull"]
    # every later request reuses that token
    before = len(fake.tokens)
    sink.has_blob(blob)
    sink.put_manifest(b"{}", OCI_CONFIG)
    assert len(fake.tokens) == before


@pytest.mark.parametrize("agent", [None, "release-bot/2.1 (+https://ci.example)"])
def test_every_request_carries_the_user_agent(agent: str | None) -> None:
    fake = FakeRegistry(bearer=True, redirect_blobs=True)
    _, layer = _image(fake)
    options = fake.options(**({"user_agent": agent} if agent else {}))
    expected = agent or f"slimmer/{slimmer_version()}"
    assert options.user_agent == expected
    assert _read_layer(RegistrySource(REF, options)) == layer
    sink = RegistrySink(RegistryRef(HOST, "team/app-slim", "1"), options)
    sink.put_manifest(b"{}", OCI_CONFIG)
    hosts = {r.url.host for r in fake.log}
    assert {"reg.test", "auth.test", "storage.test"} <= hosts   # registry, tokens, redirect
    assert {r.headers.get("user-agent") for r in fake.log} == {expected}


@pytest.mark.parametrize("agent", ["", "  ", "two\nlines", "caf\u00e9/1"])
def test_user_agent_must_be_one_printable_ascii_line(agent: str) -> None:
    with pytest.raises(UsageError, match="user agent"):
        RegistryOptions(user_agent=agent)


def test_identity_token_is_sent_as_refresh_token() -> None:
    fake = FakeRegistry(bearer=True)
    _image(fake)
    options = fake.options()
    source = RegistrySource(REF, options)
    source.repository.client.session.auth.creds = Credentials("<token>", identity_token="refresh-me")
    source.resolve()
    post = [r for r in fake.log if r.url.host == "auth.test"][0]
    assert post.method == "POST"
    form = dict(x.split("=", 1) for x in post.content.decode().split("&"))
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "refresh-me"


# -- pushing ----------------------------------------------------------------------------------

def _never() -> Any:
    raise AssertionError("the blob was downloaded")


def _sink(fake: FakeRegistry, **kw: Any) -> RegistrySink:
    return RegistrySink(RegistryRef(HOST, "team/app", "slim"), fake.options(**kw))


def test_chunked_upload_follows_the_newest_location() -> None:
    fake = FakeRegistry()
    sink = _sink(fake, chunk_size=1000)
    data = os.urandom(3500)
    writer = sink.blob_writer()
    for i in range(0, len(data), 300):
        writer.write(data[i:i + 300])
    writer.commit(sha(data), len(data))
    assert fake.blobs[sha(data)] == data
    ranges = [r.headers["content-range"] for r in fake.requests("PATCH")]
    assert ranges == ["0-1199", "1200-2399", "2400-3499"]
    assert len(fake.requests("POST")) == 1 and fake.uploads == {}


def test_small_blob_writer_uses_one_put_and_skips_present_blobs() -> None:
    fake = FakeRegistry()
    sink = _sink(fake)
    for _ in range(2):
        writer = sink.blob_writer()
        writer.write(b"small")
        writer.commit(sha(b"small"), 5)
    assert len(fake.requests("PUT", "/blobs/uploads/")) == 1
    assert not fake.requests("PATCH")


@pytest.mark.parametrize("status", [405, 400, 416])
def test_registries_refusing_chunks_get_one_monolithic_put(status: int) -> None:
    fake = FakeRegistry(refuse_patch=status)
    sink = _sink(fake, chunk_size=1000)
    data = os.urandom(4321)
    writer = sink.blob_writer()
    for i in range(0, len(data), 700):
        writer.write(data[i:i + 700])
    writer.commit(sha(data), len(data))
    assert fake.blobs[sha(data)] == data
    assert len(fake.requests("PATCH")) == 1             # tried once, then spooled
    assert len(fake.requests("DELETE")) == 1            # the refused session is cancelled
    put = fake.requests("PUT", "/blobs/uploads/")[0]
    assert put.headers["content-length"] == str(len(data))


def test_abort_cancels_open_uploads_and_tags_nothing() -> None:
    fake = FakeRegistry()
    sink = _sink(fake, chunk_size=1000)
    writer = sink.blob_writer()
    writer.write(os.urandom(2500))
    assert len(fake.uploads) == 1
    sink.abort()
    assert fake.uploads == {} and len(fake.requests("DELETE")) == 1
    assert "slim" not in fake.manifests
    with pytest.raises(Exception, match="aborted"):
        sink.blob_writer()


@pytest.mark.parametrize("refuse_patch", [None, 405])
def test_mount_refused_uploads_through_the_offered_session(refuse_patch: int | None) -> None:
    fake = FakeRegistry(mountable=False, refuse_patch=refuse_patch)
    data = os.urandom(3000)
    sink = RegistrySink(RegistryRef(HOST, "other/app", "1"), fake.options())
    sink.copy_blob(Descriptor(OCI_LAYER_GZIP, sha(data), len(data)),
                   lambda: __import__("io").BytesIO(data), BlobOrigin(HOST, "team/app"))
    assert fake.blobs[sha(data)] == data
    # the 202 session of the mount is used; a registry refusing PATCH gets one PUT instead
    assert len(fake.requests("POST")) == (1 if refuse_patch is None else 2)


def test_copy_blob_from_another_registry_streams_and_skips_present() -> None:
    import io
    fake = FakeRegistry()
    data = os.urandom(3000)
    sink = _sink(fake)
    desc = Descriptor(OCI_LAYER_GZIP, sha(data), len(data))
    sink.copy_blob(desc, lambda: io.BytesIO(data), BlobOrigin("elsewhere.io", "team/app"))
    sink.copy_blob(desc, _never, BlobOrigin("elsewhere.io", "team/app"))
    assert fake.blobs[sha(data)] == data and not fake.requests("POST", "mount=")


def test_manifests_by_digest_then_tag_on_commit() -> None:
    fake = FakeRegistry()
    sink = _sink(fake)
    cfg = sink.put_manifest(b'{"config": 1}', OCI_CONFIG)
    assert fake.blobs[cfg.digest] == b'{"config": 1}'
    raw = dump_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST})
    desc = sink.put_manifest(raw, OCI_MANIFEST)
    assert list(fake.manifests) == [desc.digest]   # pushed by digest, no tag yet
    sink.commit(desc)
    assert fake.manifests["slim"] == (raw, OCI_MANIFEST)
    put = fake.requests("PUT", "/manifests/slim")[0]
    assert put.headers["content-type"] == OCI_MANIFEST and put.content == raw


def test_destination_digest_is_refused() -> None:
    with pytest.raises(UsageError, match="cannot name a digest"):
        RegistrySink(RegistryRef(HOST, "a", None, "sha256:" + "1" * 64), RegistryOptions())


# -- TLS / scheme options ---------------------------------------------------------------------

def test_scheme_rules() -> None:
    default = RegistryOptions()
    assert default.base_url("localhost:5000") == "http://localhost:5000"
    assert default.base_url("127.0.0.1:1234") == "http://127.0.0.1:1234"
    assert default.base_url("reg.io") == "https://reg.io"
    assert default.base_url("docker.io") == "https://registry-1.docker.io"
    assert RegistryOptions(tls_verify=True).base_url("127.0.0.1:1") == "https://127.0.0.1:1"
    assert RegistryOptions(insecure=("reg.io",)).base_url("reg.io:5000") == "http://reg.io:5000"
    assert RegistryOptions(tls_verify=False).ssl_context() is False


# -- stored credentials -----------------------------------------------------------------------

def _b64(text: str) -> str:
    import base64
    return base64.b64encode(text.encode()).decode()


def test_docker_config_auths_and_hub_alias(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpass")},
        "reg.io": {"auth": _b64("alice:pa:ss")},
        "https://tok.io": {"auth": _b64("bob:"), "identitytoken": "idtok"},
        "quay.io/org": {"auth": _b64("org:1")},
        "quay.io/org/special": {"auth": _b64("special:2")},
    }}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert find_credentials("docker.io", "library/ubuntu", env) == Credentials("hubuser",
                                                                                "hubpass")
    assert find_credentials("reg.io", "x", env) == Credentials("alice", "pa:ss")
    assert find_credentials("tok.io", "x", env) == Credentials("bob", "", "idtok")
    assert find_credentials("quay.io", "org/special/x", env) == Credentials("special", "2")
    assert find_credentials("quay.io", "org/other", env) == Credentials("org", "1")
    assert find_credentials("none.io", "x", env) is None


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text("#!/bin/sh\nread url\ncase \"$url\" in\n"
                      "  helped.io) echo '{\"Username\":\"h\",\"Secret\":\"s\"}' ;;\n"
                      "  https://index.docker.io/v1/) echo '{\"Username\":\"<token>\","
                      "\"Secret\":\"idt\"}' ;;\n"
                      "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
                      "esac\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "config.json").write_text(json.dumps({
        "credsStore": "fake", "credHelpers": {"other.io": "missing"},
        "auths": {"plain.io": {"auth": _b64("p:q")}}}))
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert find_credentials("helped.io", "x", env) == Credentials("h", "s")
    assert find_credentials("docker.io", "library/x", env) == Credentials("<token>", "", "idt")
    assert find_credentials("other.io", "x", env) is None       # helper not installed
    assert find_credentials("plain.io", "x", env) == Credentials("p", "q")  # store had none


def test_explicit_creds_win_per_side() -> None:
    options = RegistryOptions(creds="a:b", dest_creds="c:d")
    assert options.credentials("source") == Credentials("a", "b")
    assert options.credentials("dest") == Credentials("c", "d")
    with pytest.raises(UsageError, match="--creds must be USER:PASSWORD"):
        RegistryOptions(creds="nopassword").credentials("source")
    assert "secret" not in repr(Credentials("u", "secret"))


def test_explicit_creds_are_bound_to_hosts() -> None:
    """Credentials are never handed out for a host they were not given for."""
    options = RegistryOptions(creds="a:b", creds_hosts=("reg.example:5000",),
                              host_creds=(("mirror.example", "m:n"),))
    assert options.credentials("source", "reg.example:5000") == Credentials("a", "b")
    assert options.credentials("dest", "REG.example:5000") == Credentials("a", "b")
    assert options.credentials("source", "evil.example:5000") is None
    assert options.credentials("dest", "mirror.example") == Credentials("m", "n")
    assert options.credentials("source", None) is None
    unbound = RegistryOptions(creds="a:b")
    assert unbound.credentials("source", "anything.example") == Credentials("a", "b")


@pytest.mark.parametrize("kw, ok", [
    ({"creds": "u:p"}, False),
    ({"creds": "u:p", "src_creds": "s:t"}, True),             # creds only reaches the dest
    ({"src_creds": "s:t", "dest_creds": "d:e"}, True),
    ({"creds": "u:p", "creds_hosts": ("a.example",)}, True),  # bound: the binding decides
])
def test_one_password_for_two_hosts_is_refused(kw: dict[str, Any], ok: bool) -> None:
    options = RegistryOptions(**kw)
    options.check_sides("a.example", "a.example")             # same host: always fine
    options.check_sides("a.example", None)                     # a layout on one side
    if ok:
        options.check_sides("a.example", "b.example")
    else:
        with pytest.raises(UsageError, match="one password to a.example and to b.example"):
            options.check_sides("a.example", "b.example")


def test_slim_push_refuses_creds_for_two_hosts_before_any_request() -> None:
    from click.testing import CliRunner

    from slimmer.cli import main
    out = CliRunner().invoke(main, ["push", "127.0.0.1:1/team/app:1", "127.0.0.1:2/team/app:1",
                                    "--creds", "u:p"])
    assert out.exit_code == 2
    assert "--creds would send one password to 127.0.0.1:1 and to 127.0.0.1:2" in out.stderr
