"""Bad input against the real registry: unknown tag or repository, a registry that dies in the
middle of a push, a truncated blob. Each is one line naming the reference and the step, exit 1,
and the destination tag does not exist afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from click.testing import CliRunner

import slimmer
from slimmer.cli import main
from slimmer.errors import BlobError, RegistryError
from slimmer.options import SlimOptions
from slimmer.transports.registry import RegistryOptions

from support.registry_server import Registry, WatchingTransport, missing, run_registry, skopeo

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
EXAMPLE = "oci:testdata/example:latest"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("registry"))


def exists(ref: str) -> bool:
    return skopeo("inspect", "--tls-verify=false", f"docker://{ref}",
                  check=False).returncode == 0


def cli_error(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), env={"DOCKER_CONFIG": os.devnull})
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slim: error: "), result.output
    return lines[0][len("slim: error: "):]


def test_unknown_tag_and_unknown_repository(registry: Registry) -> None:
    skopeo("copy", "--dest-tls-verify=false", EXAMPLE, f"docker://{registry.host}/team/app:1")
    src = f"{registry.host}/team/app:nope"
    assert cli_error("push", src, f"{registry.host}/team/app:out") == (
        f"reading {src} manifest: MANIFEST_UNKNOWN: manifest unknown (HTTP 404)")
    src = f"{registry.host}/team/nothing:1"
    # distribution 2.8 answers MANIFEST_UNKNOWN for a missing repository too (others say
    # NAME_UNKNOWN); either way the message names the reference, the step and the reply
    assert cli_error("analyze", src) in (
        f"reading {src} manifest: MANIFEST_UNKNOWN: manifest unknown (HTTP 404)",
        f"reading {src} manifest: NAME_UNKNOWN: repository name not known to registry "
        f"(HTTP 404)")
    assert not exists(f"{registry.host}/team/app:out")


def test_truncated_blob(registry: Registry) -> None:
    src = f"{registry.host}/team/trunc:1"
    skopeo("copy", "--dest-tls-verify=false", EXAMPLE, f"docker://{src}")
    layers = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{src}").stdout)[
        "Layers"]
    data = registry.blob_data(layers[-1])
    size = data.stat().st_size
    with open(data, "r+b") as fh:
        fh.truncate(size // 2)
    dest = f"{registry.host}/team/trunc:slim"
    message = cli_error("push", src, dest)
    assert message == (f"reading {src} blob {layers[-1][:19]}: blob is {size // 2} bytes, "
                       f"descriptor says {size}")
    with pytest.raises(BlobError):
        slimmer.slim(src, dest)
    assert not exists(dest)


def test_registry_killed_half_way_through_a_chunked_upload(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "dies").start()
    dest = f"{registry.host}/team/app:1"
    try:
        def kill_at_third_patch(request: httpx.Request, count: int) -> None:
            if request.method == "PATCH":
                patches.append(count)
                if len(patches) == 3:
                    registry.stop()
        patches: list[int] = []
        transport = WatchingTransport(before=kill_at_third_patch)
        options = RegistryOptions(transport=transport, chunk_size=64 << 10, backoff=0.01,
                                  docker_config=False)
        with pytest.raises(RegistryError) as info:   # gzip output streams out as it is made
            slimmer.slim(EXAMPLE, dest, SlimOptions(compression="gzip"), registry=options)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"pushing {dest} blob: connection to 127.0.0.1 failed: "
                                  f"ConnectError")
        assert message.endswith("(after 4 attempts)")
        assert transport.count("PUT", "/manifests/") == 0
    finally:
        registry.stop()
    registry.start()             # same port and storage: the tag was never written
    try:
        assert not exists(dest)
    finally:
        registry.stop()
