"""Writing ``docker-archive`` and ``oci-archive`` tars: read back by slimmer and by skopeo,
the same bytes for the same image, layers ``docker load`` reads, and all-or-nothing (a failed
run leaves an existing archive as it was and nothing staged behind)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import slimmer
from slimmer.cli import main
from slimmer.errors import OutputError, UsageError
from slimmer.oci.media import DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, OCI_LAYER_ZSTD
from slimmer.options import SlimOptions
from slimmer.transports import open_source

from support.layoututil import make_image, make_index, platformed, tagged, write_layout
from support.registry_server import SKOPEO, skopeo

EXAMPLE = "oci:testdata/example:latest"
DOCKER_EXAMPLE = "docker-archive:{}:team/example:1"


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_oci_archive_round_trip_and_same_bytes(tmp_path: Path) -> None:
    out, again = tmp_path / "a.tar", tmp_path / "b.tar"
    report = slimmer.slim(EXAMPLE, f"oci-archive:{out}:v1")
    slimmer.slim(EXAMPLE, f"oci-archive:{again}:v1")
    assert out.read_bytes() == again.read_bytes()       # sorted members, mtime 0
    files = members(out)
    assert {"oci-layout", "index.json"} <= set(files) and "manifest.json" not in files
    root = open_source(f"oci-archive:{out}:v1").resolve()
    assert root.descriptor.digest == report.digest
    assert {ly.descriptor.media_type for ly in root.images[0].layers} == {OCI_LAYER_ZSTD}
    assert leftovers(tmp_path) == []


def test_docker_archive_layers_docker_load_reads(tmp_path: Path) -> None:
    out = tmp_path / "d.tar"
    report = slimmer.slim(EXAMPLE, DOCKER_EXAMPLE.format(out))
    assert any("layers written uncompressed, not zstd" in w for w in report.warnings)
    files = members(out)
    manifest_json = json.loads(files["manifest.json"])
    assert manifest_json == [{"Config": manifest_json[0]["Config"], "RepoTags": ["team/example:1"],
                              "Layers": manifest_json[0]["Layers"]}]
    assert all(p.startswith("blobs/sha256/") and p in files for p in manifest_json[0]["Layers"])
    assert json.loads(files["repositories"]) == {
        "team/example": {"1": manifest_json[0]["Layers"][-1].rsplit("/", 1)[1]}}
    index = json.loads(files["index.json"])["manifests"][0]
    assert index["annotations"] == {"io.containerd.image.name": "docker.io/team/example:1",
                                    "org.opencontainers.image.ref.name": "1"}
    image = open_source(f"docker-archive:{out}:team/example:1").resolve().images[0]
    assert {ly.descriptor.media_type for ly in image.layers} == {DOCKER_LAYER_TAR}
    assert [ly.descriptor.digest for ly in image.layers] == list(image.config.diff_ids)
    # The same members read as an OCI layout: the manifest that was written.
    assert open_source(f"oci-archive:{out}:1").resolve().descriptor.digest == report.digest

    gz = tmp_path / "gz.tar"
    report = slimmer.slim(EXAMPLE, f"docker-archive:{gz}", SlimOptions(compression="gzip"))
    assert not report.warnings
    layers = open_source(f"docker-archive:{gz}").resolve().images[0].layers
    assert {ly.descriptor.media_type for ly in layers} == {DOCKER_LAYER_GZIP}
    assert json.loads(members(gz)["manifest.json"])[0]["RepoTags"] is None


def test_what_a_docker_archive_cannot_hold(tmp_path: Path) -> None:
    layout = tmp_path / "multi"
    amd, arm = make_image(layout, arch="amd64"), make_image(layout, arch="arm64")
    write_layout(layout, [tagged(make_index(layout, [platformed(amd, "linux", "amd64"),
                                                     platformed(arm, "linux", "arm64")]), "1")])
    out = tmp_path / "d.tar"
    with pytest.raises(UsageError, match="holds one image, the source has 2 platforms"):
        slimmer.slim(f"oci:{layout}:1", f"docker-archive:{out}")
    with pytest.raises(UsageError, match="holds one variant"):
        slimmer.slim(EXAMPLE, f"docker-archive:{out}", SlimOptions(compression="gzip+zstd"))
    slimmer.slim(f"oci:{layout}:1", f"docker-archive:{out}", SlimOptions(platforms=("linux/arm64",)))
    assert str(open_source(f"docker-archive:{out}").resolve().images[0].platform) == "linux/arm64"
    # An OCI archive holds the index, and both variants.
    report = slimmer.slim(f"oci:{layout}:1", f"oci-archive:{tmp_path / 'o.tar'}",
                          SlimOptions(compression="gzip+zstd"))
    assert len(open_source(f"oci-archive:{tmp_path / 'o.tar'}").resolve().images) == 4
    assert [i.variant for i in report.images] == [None, None, "zstd", "zstd"]
    with pytest.raises(OutputError, match="does not exist"):
        slimmer.slim(EXAMPLE, f"oci-archive:{tmp_path / 'no' / 'x.tar'}")
    with pytest.raises(OutputError, match="is a directory"):
        slimmer.slim(EXAMPLE, f"oci-archive:{tmp_path}")
    assert leftovers(tmp_path) == []


def test_failed_run_leaves_the_archive_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "d.tar"
    slimmer.slim(EXAMPLE, DOCKER_EXAMPLE.format(out))
    before = out.read_bytes()
    layout = tmp_path / "bad"
    desc = make_image(layout, [{"etc/a": b"a" * 5000}, {"etc/b": bytes(range(256)) * 40}])
    write_layout(layout, [tagged(desc, "1")])
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"][7:]).read_text())
    blob = layout / "blobs" / "sha256" / manifest["layers"][1]["digest"][7:]
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 1                                   # same size, other content
    blob.write_bytes(bytes(raw))
    # No scan: the first layer is written into the staged layout before the second fails.
    result = CliRunner().invoke(main, ["push", "--profile", "none", "--merge", "none", "-j", "1",
                                       f"oci:{layout}:1", DOCKER_EXAMPLE.format(out)])
    assert result.exit_code == 1 and result.output.startswith("slim: error: reading oci:")
    assert out.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.integration
@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (scripts/setup)")
def test_skopeo_reads_what_the_sinks_write(tmp_path: Path) -> None:
    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    slimmer.slim(EXAMPLE, DOCKER_EXAMPLE.format(docker_tar))
    report = slimmer.slim(EXAMPLE, f"oci-archive:{oci_tar}:v1")
    # skopeo copy verifies every blob against its digest and size.
    skopeo("copy", f"docker-archive:{docker_tar}", f"oci:{tmp_path / 'from-docker'}:x")
    skopeo("copy", f"docker-archive:{docker_tar}:team/example:1",
           f"oci:{tmp_path / 'by-name'}:x")
    skopeo("copy", f"oci-archive:{oci_tar}:v1", f"oci:{tmp_path / 'from-oci'}:x")
    raw = json.loads(skopeo("inspect", "--raw", f"oci-archive:{oci_tar}:v1").stdout)
    assert raw["annotations"]["io.slimmer.source.digest"] == report.source_digest
    slimmed = [ly.diff_id for ly in report.images[0].layers]
    for back in ("from-docker", "from-oci"):
        config = json.loads(skopeo("inspect", "--config", f"oci:{tmp_path / back}:x").stdout)
        assert config["rootfs"]["diff_ids"] == slimmed
