"""Archives and the real registry: a docker archive skopeo wrote is slimmed into a registry,
and a slim result written as an archive goes back into the registry with skopeo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

import slimmer

from support.registry_server import Registry, missing, run_registry, skopeo

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
EXAMPLE = "oci:testdata/example:latest"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from run_registry(tmp_path_factory.mktemp("registry"))


def test_skopeo_archive_into_registry_and_back(registry: Registry, tmp_path: Path) -> None:
    saved = tmp_path / "saved.tar"
    skopeo("copy", EXAMPLE, f"docker-archive:{saved}:team/app:1")
    dest = f"{registry.host}/team/app:1-slim"
    report = slimmer.slim(f"docker-archive:{saved}:team/app:1", dest)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").stdout)
    assert raw["annotations"]["io.slimmer.source.digest"] == report.source_digest
    skopeo("copy", "--src-tls-verify=false", f"docker://{dest}", f"oci:{tmp_path / 'back'}:x")

    for kind in ("docker-archive", "oci-archive"):
        out = tmp_path / f"{kind}.tar"
        slimmer.slim(dest, f"{kind}:{out}", slimmer.SlimOptions(compression="gzip"))
        pushed = f"{registry.host}/team/from-{kind}:1"
        skopeo("copy", "--dest-tls-verify=false", f"{kind}:{out}", f"docker://{pushed}")
        config = json.loads(skopeo("inspect", "--config", "--tls-verify=false",
                                   f"docker://{pushed}").stdout)
        assert config["rootfs"]["diff_ids"] == [ly.diff_id for ly in report.images[0].layers]
