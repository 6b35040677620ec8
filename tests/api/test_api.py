"""Library API behaviour on hand-made layouts: platforms, media types, compression choices,
base layers, and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import slimmer
from slimmer import SlimOptions

from support.layoututil import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    blob_path,
    make_image,
    make_index,
    platformed,
    tagged,
    write_layout,
)

LAYERS = [{"etc/os-release": b"ID=test\n", "usr/share/doc/pkg/README": b"r" * 5000,
           "usr/share/doc/pkg/copyright": b"licence"},
          {"app/main": b"#!/bin/sh\necho hi\n", "tmp/build.log": b"log" * 1000}]


def read_json(layout: Path, digest: str) -> Any:
    return json.loads(blob_path(layout, digest).read_bytes())


def top(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_text())["manifests"][-1]


def multiarch(layout: Path) -> None:
    amd = make_image(layout, LAYERS, arch="amd64")
    arm = make_image(layout, LAYERS + [{"extra": b"arm"}], arch="arm64", variant="v8")
    idx = make_index(layout, [platformed(amd, "linux", "amd64"),
                              platformed(arm, "linux", "arm64", "v8")])
    write_layout(layout, [tagged(idx, "v1")])


def test_all_platforms_make_an_index(tmp_path: Path) -> None:
    multiarch(tmp_path / "src")
    report = slimmer.slim(f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'out'}:v1")
    desc = top(tmp_path / "out")
    assert desc["mediaType"] == OCI_INDEX and desc["digest"] == report.digest
    index = read_json(tmp_path / "out", desc["digest"])
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert index["manifests"][1]["platform"]["variant"] == "v8"
    assert index["annotations"]["io.slimmer.source.digest"] == report.source_digest
    assert [img.platform for img in report.images] == ["linux/amd64", "linux/arm64/v8"]


def test_one_platform_gives_a_single_image(tmp_path: Path) -> None:
    multiarch(tmp_path / "src")
    report = slimmer.slim(f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'out'}:v1",
                          SlimOptions(platforms=("linux/arm64",)))
    desc = top(tmp_path / "out")
    assert desc["mediaType"].endswith("manifest.v1+json")
    assert read_json(tmp_path / "out", desc["digest"])["layers"]
    assert len(report.images) == 1


def test_default_profiles_strip_docs_and_tmp_but_keep_copyright(tmp_path: Path) -> None:
    write_layout(tmp_path / "src", [tagged(make_image(tmp_path / "src", LAYERS), "v1")])
    report = slimmer.slim(f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'out'}:v1")
    removed = {r["path"] for r in report.images[0].removed}
    assert removed == {"usr/share/doc/pkg/README", "tmp/build.log"}
    assert report.images[0].removed_by_profile == {
        "docs": {"files": 1, "bytes": 5000}, "caches": {"files": 1, "bytes": 3000}}


def test_docker_schema2_to_zstd_becomes_oci_and_gzip_stays_docker(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, LAYERS, docker=True), "v1")])
    slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'z'}:v1")
    man = read_json(tmp_path / "z", top(tmp_path / "z")["digest"])
    assert man["mediaType"].startswith("application/vnd.oci")
    assert man["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert {ly["mediaType"] for ly in man["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"}
    slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'g'}:v1", SlimOptions(compression="gzip"))
    man = read_json(tmp_path / "g", top(tmp_path / "g")["digest"])
    assert man["mediaType"] == DOCKER_MANIFEST
    assert {ly["mediaType"] for ly in man["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"}


def test_keep_passes_unchanged_blobs_through(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, LAYERS), "v1")])
    report = slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:v1",
                          SlimOptions(profiles=("none",), merge="none", compression="keep"))
    src_man = read_json(src, top(src)["digest"])
    out_man = read_json(tmp_path / "out", top(tmp_path / "out")["digest"])
    assert [ly["digest"] for ly in out_man["layers"]] == [ly["digest"] for ly in src_man["layers"]]
    assert [ly.mode for ly in report.images[0].layers] == ["passthrough", "passthrough"]


def test_recompress_keeps_diff_ids(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, LAYERS), "v1")])
    slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:v1",
                 SlimOptions(profiles=("none",), merge="none"))
    src_cfg = read_json(src, read_json(src, top(src)["digest"])["config"]["digest"])
    out = tmp_path / "out"
    out_cfg = read_json(out, read_json(out, top(out)["digest"])["config"]["digest"])
    assert out_cfg["rootfs"]["diff_ids"] == src_cfg["rootfs"]["diff_ids"]


def test_keep_base_leaves_base_layer_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, LAYERS), "v1")])
    report = slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:v1",
                          SlimOptions(base=1, keep_base=True, compression="keep"))
    layers = report.images[0].layers
    assert layers[0].mode == "passthrough" and layers[0].removed_files == 0
    assert layers[1].mode == "rebuild" and layers[1].removed_files == 1


def test_strip_and_keep_globs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, LAYERS), "v1")])
    report = slimmer.analyze(f"oci:{src}:v1", SlimOptions(
        profiles=("none",), strip=("/etc/**", "/app/**"), keep=("/app/main",)))
    img = report.images[0]
    assert {r["path"] for r in img.removed} == {"etc/os-release"}
    assert any(o["path"] == "app/main" for o in img.overrides)
    assert report.digest is None and not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad", [dict(merge="sometimes"), dict(compression="lz4"),
                                 dict(level=40), dict(jobs=0), dict(platforms=("linux",)),
                                 dict(no_protect=("/usr/lib/../x",))])
def test_bad_options_are_usage_errors(tmp_path: Path, bad: dict[str, Any]) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, LAYERS), "v1")])
    with pytest.raises(slimmer.UsageError):
        slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:v1", SlimOptions(**bad))
    assert not (tmp_path / "out").exists()


def test_second_push_of_the_same_result_writes_nothing(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write_layout(src, [tagged(make_image(src, LAYERS), "v1")])
    first = slimmer.slim(f"oci:{src}:v1", f"oci:{out}:v1")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = slimmer.slim(f"oci:{src}:v1", f"oci:{out}:v1")
    assert again.digest == first.digest and again.images == []
    assert any("nothing written" in w for w in again.warnings)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    other = slimmer.slim(f"oci:{src}:v1", f"oci:{out}:v1", SlimOptions(compression="gzip"))
    assert other.images and other.digest != first.digest
    man = read_json(out, top(out)["digest"])
    assert man["annotations"]["io.slimmer.options.digest"].startswith("sha256:")


def test_a_layout_push_loads_no_registry_code(tmp_path: Path) -> None:
    """Nothing to verify, sign or attach, and a layout destination: the registry client and
    the signing code (httpx alone takes 0.17 s to import) are not loaded."""
    write_layout(tmp_path / "src", [tagged(make_image(tmp_path / "src", LAYERS), "v1")])
    code = ("import sys, slimmer\n"
            "from slimmer.trust.options import TrustOptions\n"
            f"slimmer.slim('oci:{tmp_path / 'src'}:v1', 'oci:{tmp_path / 'out'}:v1', "
            "trust=TrustOptions())\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'httpx'\n"
            "             or m.startswith(('slimmer.trust.remote', 'slimmer.transports.registry.r'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert run.stdout.strip() == "[]"
    assert top(tmp_path / "out")["digest"]
