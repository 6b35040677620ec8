"""The layer cache against the real CNCF registry: the same source pushed to a second tag
sends no layer blob (manifest PUTs only), pushed to another repository of the registry it is
mounted, and a cache entry the registry contradicts is rebuilt, never trusted. The registry's
own log is the witness of what it received."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest

import slimmer
from slimmer.build.cache import LayerCache
from slimmer.oci.image import BlobOrigin
from slimmer.options import SlimOptions
from slimmer.transports.registry import RegistryOptions

from support.containerd_server import missing as containerd_missing
from support.containerd_server import run_containerd
from support.registry_server import Registry, WatchingTransport, missing, run_registry, skopeo

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
EXAMPLE = "oci:testdata/example:latest"
#: Chunks smaller than the example's layer, so a first push streams PATCHes.
CHUNK = 64 << 10
_FIELD = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)')


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("registry"))


class Logged:
    """The requests the registry logged (``response completed`` lines) since creation."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.start = registry.log.stat().st_size

    def requests(self) -> list[tuple[str, str]]:
        """(method, URI) of every request answered, in order."""
        out = []
        for line in self.registry.log.read_text()[self.start:].splitlines():
            if 'msg="response completed"' not in line:
                continue
            fields = {k: v.strip('"') for k, v in _FIELD.findall(line)}
            out.append((fields["http.request.method"], fields["http.request.uri"]))
        return out

    def uploads(self) -> list[str]:
        """URIs of requests that carried blob bytes (PATCH, or PUT closing an upload)."""
        return [u for m, u in self.requests() if "/blobs/uploads/" in u and m in ("PATCH", "PUT")]

    def mounts(self) -> list[str]:
        return [u for m, u in self.requests() if m == "POST" and "mount=" in u]


def watched() -> tuple[RegistryOptions, WatchingTransport]:
    transport = WatchingTransport()
    return RegistryOptions(transport=transport, docker_config=False, chunk_size=CHUNK), transport


def push(src: str, dest: str, cache: LayerCache | bool = True,
         options: SlimOptions | None = None) -> tuple[Any, WatchingTransport]:
    registry_options, transport = watched()
    return slimmer.slim(src, dest, options, registry=registry_options, cache=cache), transport


def test_second_tag_and_other_repository_send_no_layer(registry: Registry,
                                                       tmp_path: Path) -> None:
    host = registry.host
    src = f"{host}/team/nodeapp:1.0"
    skopeo("copy", "--dest-tls-verify=false", EXAMPLE, f"docker://{src}")

    log = Logged(registry)
    first, sent = push(src, f"{host}/team/nodeapp:1.0-slim")
    assert [ly.cached for ly in first.images[0].layers] == [False]
    assert sent.count("PATCH") >= 2 and log.uploads()          # built and streamed up

    log = Logged(registry)
    second, sent = push(src, f"{host}/team/nodeapp:1.0-slim2")
    assert second.digest == first.digest
    assert [ly.cached for ly in second.images[0].layers] == [True]
    # Manifest PUTs only: by digest, then the tag. No upload session, no blob byte.
    assert sent.upload_bytes == 0 and sent.count("POST") == 0 and sent.count("PATCH") == 0
    assert [(m, p) for m, p in sent.log if m == "PUT"] == [
        ("PUT", f"/v2/team/nodeapp/manifests/{first.digest}"),
        ("PUT", "/v2/team/nodeapp/manifests/1.0-slim2")]
    assert log.uploads() == [] and log.mounts() == []

    log = Logged(registry)
    third, sent = push(src, f"{host}/other/nodeapp:1.0-slim")
    assert third.digest == first.digest
    assert [ly.cached for ly in third.images[0].layers] == [True]
    # The rebuilt layer and the config are mounted from team/nodeapp; nothing is uploaded.
    assert sent.upload_bytes == 0 and sent.count("PATCH") == 0
    mounts = log.mounts()
    assert len(mounts) == 2 and all("from=team%2Fnodeapp" in u for u in mounts)
    assert log.uploads() == []
    skopeo("copy", "--src-tls-verify=false", f"docker://{host}/other/nodeapp:1.0-slim",
           f"oci:{tmp_path / 'back'}:x")                     # every blob there and right


def test_entries_the_registry_contradicts_are_rebuilt(registry: Registry) -> None:
    host = registry.host
    path = str(Path(LayerCache().path))
    first, _ = push(EXAMPLE, f"{host}/lies/app:1")
    layer = first.images[0].layers[0]

    with sqlite3.connect(path) as db:                       # another size than the registry's
        db.execute("UPDATE results SET size = size + 7")
    again, sent = push(EXAMPLE, f"{host}/lies/app:2")
    assert [ly.cached for ly in again.images[0].layers] == [False]
    assert again.digest == first.digest and sent.count("POST") >= 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT digest, size FROM results").fetchall() == \
            [(layer.digest, layer.size_after)]

    with sqlite3.connect(path) as db:                       # a blob the registry lacks
        db.execute("UPDATE results SET digest = ?", ("sha256:" + "1" * 64,))
    third, _ = push(EXAMPLE, f"{host}/lies/app:3")
    assert [ly.cached for ly in third.images[0].layers] == [False]
    assert third.digest == first.digest
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT digest FROM results").fetchall() == [(layer.digest,)]

    # A repository the cache says holds the blob, but that does not: the mount is refused
    # (202, session cancelled), the layer is built, the wrong record forgotten.
    cache = LayerCache()
    wrong = BlobOrigin(host, "nobody/has-it")
    cache.put([], wrong, blobs=[layer.digest])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM seen WHERE repository != 'nobody/has-it'")
    log = Logged(registry)
    fourth, _ = push(EXAMPLE, f"{host}/fresh/app:1", cache=cache)
    assert [ly.cached for ly in fourth.images[0].layers] == [False]
    assert any("from=nobody%2Fhas-it" in u for u in log.mounts())
    assert wrong not in cache.origins(layer.digest, host)
    assert any(m == "DELETE" and u.startswith("/v2/fresh/app/blobs/uploads/")
               for m, u in log.requests())                 # the offered session cancelled


def test_no_cache_builds_and_uploads_again(registry: Registry) -> None:
    host = registry.host
    push(EXAMPLE, f"{host}/nocache/app:1")
    report, sent = push(EXAMPLE, f"{host}/nocache/app:2", cache=False)
    assert [ly.cached for ly in report.images[0].layers] == [False]
    assert sent.count("PATCH") >= 1          # streamed again (the registry deduplicates)


def test_gzip_zstd_index(registry: Registry, tmp_path: Path) -> None:
    host = registry.host
    src = f"{host}/dual/src:1"
    skopeo("copy", "--dest-tls-verify=false", EXAMPLE, f"docker://{src}")
    dest = f"{host}/dual/app:1"
    keep = SlimOptions(profiles=("none",), merge="none", compression="gzip+zstd")
    report, sent = push(src, dest, options=keep)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").stdout)
    entries = raw["manifests"]
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [e.get("annotations") for e in entries] == [
        None, {"io.github.containers.compression.zstd": "true"}]
    assert [e["platform"] for e in entries] == [{"architecture": "amd64", "os": "linux"}] * 2
    gzip_manifest, zstd_manifest = (json.loads(skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{host}/dual/app@{e['digest']}")
        .stdout) for e in entries)
    source_layers = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                                      f"docker://{src}").stdout)["layers"]
    # Unchanged gzip layers are the source's blobs (mounted, never re-sent); zstd ones are new.
    assert [ly["digest"] for ly in gzip_manifest["layers"]] == \
        [ly["digest"] for ly in source_layers]
    assert {ly["mediaType"] for ly in zstd_manifest["layers"]} == \
        {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert gzip_manifest["config"]["digest"] == zstd_manifest["config"]["digest"]
    assert [i.variant for i in report.images] == [None, "zstd"]
    assert report.size_after == sum(ly["size"] for ly in source_layers)   # the gzip variant
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{dest}",
           f"oci:{tmp_path / 'back'}:x")


@pytest.mark.skipif(containerd_missing() is not None, reason=str(containerd_missing()))
def test_containerd_pulls_the_gzip_variant(registry: Registry,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """containerd takes the first platform match: the gzip manifest."""
    dest = f"{registry.host}/dual/ctr:1"
    report, _ = push(EXAMPLE, dest, options=SlimOptions(compression="gzip+zstd"))
    gzip_layer = report.images[0].layers[0].digest
    zstd_layer = report.images[1].layers[0].digest
    for server in run_containerd(tmp_path_factory.mktemp("containerd")):
        pulled = server.ctr("image", "pull", "--plain-http", dest)
        assert f"unpacking linux/amd64 {report.digest}" in pulled.stdout
        content = {line.split()[0]: line for line in
                   server.ctr("content", "ls").stdout.splitlines()[1:]}
        # The gzip layer is the one unpacked (it has the uncompressed label of the snapshot).
        assert "containerd.io/uncompressed=" in content[gzip_layer]
        assert zstd_layer not in content or "uncompressed" not in content[zstd_layer]
        images = server.ctr("image", "ls").stdout
        assert report.digest in images
