"""Push to and pull from the real CNCF distribution registry over plain HTTP; skopeo checks
what was pushed (inspect, and copy back to a layout, which verifies every digest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

import slimmer
from slimmer.cli import main
from slimmer.oci.media import DOCKER_MANIFEST, OCI_INDEX, OCI_LAYER_ZSTD, OCI_MANIFEST
from slimmer.options import SlimOptions
from slimmer.transports.registry import RegistryOptions

from support.layoututil import make_image, make_index, platformed, tagged, write_layout
from support.registry_server import Registry, WatchingTransport, missing, run_registry, skopeo

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
EXAMPLE = "oci:testdata/example:latest"
PASS_THROUGH = SlimOptions(profiles=("none",), merge="none", compression="keep")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("registry"))


def watched(**kw: Any) -> tuple[RegistryOptions, WatchingTransport]:
    transport = WatchingTransport()
    return RegistryOptions(transport=transport, docker_config=False, **kw), transport


def inspect(ref: str, *extra: str) -> Any:
    return json.loads(skopeo("inspect", "--tls-verify=false", *extra, f"docker://{ref}").stdout)


def copy_back(ref: str, dest: Path, *extra: str) -> None:
    """skopeo copy to a layout: fails unless every blob matches its digest and size."""
    skopeo("copy", "--src-tls-verify=false", *extra, f"docker://{ref}", f"oci:{dest}:out")


def push_with_skopeo(src: str, ref: str, *extra: str) -> None:
    skopeo("copy", "--dest-tls-verify=false", *extra, src, f"docker://{ref}")


def test_push_layout_then_push_again_sends_no_blob_bytes(registry: Registry,
                                                          tmp_path: Path) -> None:
    dest = f"{registry.host}/team/app:1.0-slim"
    options, first = watched()
    report = slimmer.slim(EXAMPLE, dest, registry=options)
    assert first.upload_bytes > 0
    assert inspect(dest)["Digest"] == report.digest
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").stdout)
    assert raw["mediaType"] == OCI_MANIFEST
    assert {layer["mediaType"] for layer in raw["layers"]} == {OCI_LAYER_ZSTD}
    copy_back(dest, tmp_path / "back")
    # The same options give the same digests: a layout written locally agrees byte for byte.
    local = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'local'}:x")
    assert local.digest == report.digest

    options, second = watched()
    again = slimmer.slim(EXAMPLE, dest, registry=options)
    assert again.digest == report.digest
    assert again.images == []  # the tag already holds this result: nothing built or sent
    assert second.upload_bytes == 0
    assert second.count("PATCH") == 0 and second.count("PUT", "/blobs/uploads/") == 0
    assert second.count("POST") == 0

    # Another tag of the same result: the layer cache knows the rebuilt layer, the registry
    # has it (HEAD): nothing is built or sent. Without the cache it is built again and skipped.
    options, third = watched()
    other = slimmer.slim(EXAMPLE, f"{registry.host}/team/app:1.0-slim-again", registry=options)
    assert other.digest == report.digest and other.images
    assert all(ly.cached for ly in other.images[0].layers)
    assert third.upload_bytes == 0
    assert third.count("PATCH") == 0 and third.count("POST") == 0
    options, fourth = watched()
    built = slimmer.slim(EXAMPLE, f"{registry.host}/team/app:1.0-slim-3", registry=options,
                         cache=False)
    assert built.digest == report.digest and not built.images[0].layers[0].cached
    assert fourth.upload_bytes == 0 and fourth.count("POST") == 0   # one chunk: HEAD first


def test_registry_to_registry_mounts_unchanged_layers(registry: Registry,
                                                      tmp_path: Path) -> None:
    src = f"{registry.host}/team/base:1.0"
    push_with_skopeo(EXAMPLE, src)
    layers = inspect(src)["Layers"]

    report = slimmer.slim(src, f"{registry.host}/team/base:1.0-slim")
    copy_back(f"{registry.host}/team/base:1.0-slim", tmp_path / "slim")
    assert report.source_digest == inspect(src)["Digest"]

    options, watch = watched()
    slimmer.slim(src, f"{registry.host}/other/base:1.0", PASS_THROUGH, registry=options)
    # every layer was mounted from team/base: never downloaded, never uploaded
    assert watch.count("POST", "/v2/other/base/blobs/uploads/?mount=") == len(layers)
    assert not any(watch.count("GET", f"/blobs/{digest}") for digest in layers)
    assert watch.upload_bytes < 4096          # only the new config went up
    assert inspect(f"{registry.host}/other/base:1.0")["Layers"] == layers
    copy_back(f"{registry.host}/other/base:1.0", tmp_path / "mounted")


def test_multi_arch_index_round_trip(registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "multi"
    amd = make_image(layout, [{"etc/a": b"amd" * 100, "usr/share/doc/x/README": b"d" * 4000}],
                     arch="amd64")
    arm = make_image(layout, [{"etc/a": b"arm" * 100, "usr/share/doc/x/README": b"d" * 4000}],
                     arch="arm64", variant="v8")
    attestation = make_image(layout, [{"sbom.json": b"{}"}], os_="unknown", arch="unknown")
    attestation["annotations"] = {"vnd.docker.reference.type": "attestation-manifest",
                                  "vnd.docker.reference.digest": amd["digest"]}
    index = make_index(layout, [platformed(amd, "linux", "amd64"),
                                platformed(arm, "linux", "arm64", "v8"),
                                platformed(attestation, "unknown", "unknown")])
    write_layout(layout, [tagged(index, "v1")])

    pushed = f"{registry.host}/team/multi:1"
    report = slimmer.slim(f"oci:{layout}:v1", pushed)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                            f"docker://{pushed}").stdout)
    assert raw["mediaType"] == OCI_INDEX
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    copy_back(pushed, tmp_path / "back", "--all")

    again = slimmer.slim(pushed, f"{registry.host}/team/multi:1-again")
    assert again.source_digest == report.digest and len(again.images) == 2
    one = slimmer.slim(pushed, f"{registry.host}/team/multi:arm",
                       SlimOptions(platforms=("linux/arm64",)))
    assert inspect(f"{registry.host}/team/multi:arm")["Architecture"] == "arm64"
    assert [image.platform for image in one.images] == ["linux/arm64/v8"]


def test_docker_schema2_source(registry: Registry, tmp_path: Path) -> None:
    src = f"{registry.host}/team/docker:1"
    push_with_skopeo(EXAMPLE, src, "--format", "v2s2")
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{src}").stdout)
    assert raw["mediaType"] == DOCKER_MANIFEST
    dest = f"{registry.host}/team/docker:1-slim"
    slimmer.slim(src, dest)
    out = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").stdout)
    assert out["mediaType"] == OCI_MANIFEST
    copy_back(dest, tmp_path / "back")


def test_cli_push_and_analyze(registry: Registry) -> None:
    runner = CliRunner()
    dest = f"{registry.host}/team/cli:1"
    result = runner.invoke(main, ["push", "--json", "-", EXAMPLE, dest])
    assert result.exit_code == 0, result.output
    document = result.output[:result.output.index("\n}\n") + 2]
    assert json.loads(document)["digest"] == inspect(dest)["Digest"]
    result = runner.invoke(main, ["analyze", f"docker://{dest}"])
    assert result.exit_code == 0, result.output
