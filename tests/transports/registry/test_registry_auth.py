"""Authentication and TLS against the real registry: htpasswd basic auth, a TLS registry with
a generated CA, and bearer tokens from an in-test token server (scopes, expiry, refusal)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner

import slimmer
from slimmer.cli import main
from slimmer.errors import AuthError, RegistryError
from slimmer.options import SlimOptions
from slimmer.transports.registry import RegistryOptions

from support.registry_server import (
    Registry,
    TokenServer,
    WatchingTransport,
    make_pki,
    missing,
    run_registry,
    skopeo,
)

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
EXAMPLE = "oci:testdata/example:latest"
PASS_THROUGH = SlimOptions(profiles=("none",), merge="none", compression="keep")


def exists(ref: str, *creds: str) -> bool:
    args = ["inspect", "--tls-verify=false", *creds, f"docker://{ref}"]
    return skopeo(*args, check=False).returncode == 0


def one_line_exit_1(args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slim: error: "), result.output
    return lines[0]


# -- htpasswd ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("basic"), auth="htpasswd",
                            users={"alice": "s3cret:with:colons"})


def test_basic_auth_with_creds_env_and_docker_config(basic_registry: Registry,
                                                     tmp_path: Path) -> None:
    host = basic_registry.host
    report = slimmer.slim(EXAMPLE, f"{host}/team/app:1",
                          registry=RegistryOptions(creds="alice:s3cret:with:colons"))
    assert exists(f"{host}/team/app:1", "--creds", "alice:s3cret:with:colons")
    # SLIM_USERNAME / SLIM_PASSWORD
    env = {"SLIM_USERNAME": "alice", "SLIM_PASSWORD": "s3cret:with:colons"}
    result = CliRunner().invoke(main, ["push", EXAMPLE, f"{host}/team/app:env"], env=env)
    assert result.exit_code == 0, result.output
    # docker config.json written by `docker login`
    auth = base64.b64encode(b"alice:s3cret:with:colons").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    result = CliRunner().invoke(main, ["push", f"{host}/team/app:1", f"{host}/team/app:cfg"],
                                env={"DOCKER_CONFIG": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert json.loads(skopeo("inspect", "--raw", "--tls-verify=false", "--creds",
                             "alice:s3cret:with:colons",
                             f"docker://{host}/team/app:1").stdout)
    assert report.digest


def test_wrong_password_is_one_line_and_tags_nothing(basic_registry: Registry,
                                                     tmp_path: Path) -> None:
    host = basic_registry.host
    dest = f"{host}/team/wrong:1"
    line = one_line_exit_1(["push", "--dest-creds", "alice:nope", EXAMPLE, dest],
                           env={"DOCKER_CONFIG": str(tmp_path)})
    # the destination is asked for its current tag before anything is built or uploaded
    assert f"pushing {dest}: reading the current tag" in line
    assert "refused the username or password" in line
    line = one_line_exit_1(["push", EXAMPLE, dest], env={"DOCKER_CONFIG": str(tmp_path)})
    assert "requires a login (use --creds or docker login)" in line
    assert not exists(dest, "--creds", "alice:s3cret:with:colons")


# -- TLS --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    directory = tmp_path_factory.mktemp("tls")
    yield from run_registry(directory, pki=make_pki(directory / "pki"))


def test_tls_with_ca_file(tls_registry: Registry) -> None:
    host = tls_registry.host
    assert tls_registry.pki is not None
    ca = str(tls_registry.pki.ca_file)
    options, watch = _watched(ca_file=ca)
    assert options.base_url(host) == f"https://{host}"
    slimmer.slim(EXAMPLE, f"{host}/team/app:1", registry=options)
    assert watch.count("PUT", "/manifests/1")
    result = CliRunner().invoke(main, ["push", "--ca-file", ca, f"{host}/team/app:1",
                                       f"{host}/team/app:2"])
    assert result.exit_code == 0, result.output
    assert exists(f"{host}/team/app:2")


def test_tls_without_the_ca_fails_and_no_tls_verify_works(tls_registry: Registry) -> None:
    host = tls_registry.host
    line = one_line_exit_1(["push", "--tls-verify", EXAMPLE, f"{host}/team/app:bad"])
    assert line.startswith(f"slim: error: pushing {host}/team/app:bad: reading the current tag")
    assert "TLS with 127.0.0.1 failed: unable to get local issuer certificate" in line
    assert "--ca-file" in line
    result = CliRunner().invoke(main, ["push", "--no-tls-verify", EXAMPLE,
                                       f"{host}/team/app:unverified"])
    assert result.exit_code == 0, result.output
    assert not exists(f"{host}/team/app:bad")


def _watched(**kw: Any) -> tuple[RegistryOptions, WatchingTransport]:
    verify = RegistryOptions(**kw).ssl_context()
    transport = WatchingTransport(verify=verify)
    return RegistryOptions(transport=transport, docker_config=False, **kw), transport


# -- bearer tokens ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("tokens"), users={"bob": "pw"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory,
                   tokens: TokenServer) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("token-registry"), auth="token",
                            token_server=tokens)


BOB = RegistryOptions(creds="bob:pw", docker_config=False)


def test_tokens_one_scope_per_parameter_and_mount_scope(token_registry: Registry,
                                                        tokens: TokenServer) -> None:
    host = token_registry.host
    tokens.reset()
    slimmer.slim(EXAMPLE, f"{host}/team/app:1", registry=BOB)
    assert tokens.issued_scopes() == [["repository:team/app:pull,push"]]
    assert exists(f"{host}/team/app:1", "--creds", "bob:pw")

    tokens.reset()
    slimmer.slim(f"{host}/team/app:1", f"{host}/other/app:1", PASS_THROUGH, registry=BOB)
    scopes = tokens.issued_scopes()
    assert ["repository:team/app:pull"] in scopes                     # the source side
    assert sorted(scopes[-1]) == ["repository:other/app:pull,push",   # push + mount source
                                  "repository:team/app:pull"]
    assert len(scopes) <= 3


def test_cached_layer_mount_asks_one_token_for_both_repositories(
        token_registry: Registry, tokens: TokenServer) -> None:
    """A layer the layer cache saw in team/cached is mounted into other/cached with one
    token naming both scopes (the source is a layout: only the cache knows team/cached)."""
    host = token_registry.host
    slimmer.slim(EXAMPLE, f"{host}/team/cached:1", registry=BOB)
    tokens.reset()
    report = slimmer.slim(EXAMPLE, f"{host}/other/cached:1", registry=BOB)
    assert [ly.cached for ly in report.images[0].layers] == [True]
    assert sorted(tokens.issued_scopes()[-1]) == ["repository:other/cached:pull,push",
                                                  "repository:team/cached:pull"]
    assert len(tokens.issued_scopes()) == 2            # push scope, then push + mount source


def _sleep_once_after(first: str, seconds: float) -> WatchingTransport:
    """A transport that pauses ``seconds`` once, before the first request whose method and
    path start with ``first`` (e.g. "PUT /v2/team/app/manifests/"), so tokens expire."""
    done: list[int] = []

    def before(request: httpx.Request, count: int) -> None:
        if not done and f"{request.method} {request.url.path}".startswith(first):
            done.append(count)
            time.sleep(seconds)
    return WatchingTransport(before=before)


@pytest.mark.parametrize("advertised", [None, 60])
def test_expired_tokens_are_renewed_mid_push(token_registry: Registry, tokens: TokenServer,
                                             advertised: int | None) -> None:
    """advertised=None: the client sees expires_in=2 and renews by itself; 60: the token server
    says 60 s but the registry rejects the token after 2 s, so the 401 leads to a new one."""
    host = token_registry.host
    tokens.reset(ttl=2, advertised_ttl=advertised)
    transport = _sleep_once_after("PUT /v2/team/expiry/manifests/", 2.6)
    options = RegistryOptions(creds="bob:pw", docker_config=False, transport=transport)
    slimmer.slim(EXAMPLE, f"{host}/team/expiry:{advertised}", registry=options)
    assert len(tokens.issued_scopes()) == 2
    assert exists(f"{host}/team/expiry:{advertised}", "--creds", "bob:pw")


def test_expired_token_refused_renewal_fails_cleanly(token_registry: Registry,
                                                     tokens: TokenServer) -> None:
    host = token_registry.host
    tokens.reset(ttl=2, refuse_after=1)
    transport = _sleep_once_after("PUT /v2/team/refused/manifests/", 2.6)
    options = RegistryOptions(creds="bob:pw", docker_config=False, transport=transport)
    dest = f"{host}/team/refused:1"
    with pytest.raises(AuthError, match=rf"pushing {dest} manifest sha256:\w+: token server "
                                        rf"127.0.0.1 refused the credentials of 'bob'"):
        slimmer.slim(EXAMPLE, dest, registry=options)
    tokens.reset()
    assert not exists(dest, "--creds", "bob:pw")


def test_token_server_refuses_wrong_password(token_registry: Registry,
                                             tokens: TokenServer) -> None:
    tokens.reset()
    src = f"{token_registry.host}/team/app:1"
    line = one_line_exit_1(["analyze", "--creds", "bob:wrong", src])
    assert line == (f"slim: error: reading {src} manifest: token server 127.0.0.1 refused "
                    f"the credentials of 'bob' (HTTP 401)")
    with pytest.raises(RegistryError):
        slimmer.analyze(src, registry=RegistryOptions(docker_config=False))
