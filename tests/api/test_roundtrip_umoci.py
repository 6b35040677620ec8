"""Images built by umoci, slimmed with --merge all --profile none, extract with umoci to exactly
the same tree (paths, types, modes, owners, contents, symlinks, hardlink groups, xattrs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import slimmer
from slimmer.options import SlimOptions

from support.imagetools import (
    Diff,
    Insert,
    build_image,
    diff_snapshots,
    layer_members,
    missing_tools,
    random_layers,
    snapshot,
    unpack_tree,
)
from support.trees import LAYERS, base_layer

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(missing_tools("umoci", "skopeo") is not None,
                                 reason=str(missing_tools("umoci", "skopeo")))]


def _slim(src: Path, tag: str, dst: Path, **kw: object) -> slimmer.Report:
    opts = SlimOptions(**{"profiles": ("none",), "merge": "all", **kw})  # type: ignore[arg-type]
    return slimmer.slim(f"oci:{src}:{tag}", f"oci:{dst}:{tag}", opts)


def _same_tree(src: Path, dst: Path, tag: str, tmp: Path) -> None:
    expected = snapshot(unpack_tree(src, tag, tmp / "a"))
    actual = snapshot(unpack_tree(dst, tag, tmp / "b"))
    assert diff_snapshots(expected, actual) == []


@pytest.fixture(scope="module")
def feature_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("features") / "layout"

    def more(root: Path) -> None:
        (root / "d").rename(root / "d-moved")
        (root / "usr/bin/su").unlink()

    build_image(layout, "v1", [*LAYERS, Diff(more, created_by="more")],
                config={"Entrypoint": ["/bin/app"]})
    return layout


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_merge_all_keeps_the_tree(feature_image: Path, tmp_path: Path, compression: str) -> None:
    out = tmp_path / "out"
    report = _slim(feature_image, "v1", out, compression=compression)
    assert len(report.images[0].layers) == 1
    _same_tree(feature_image, out, "v1", tmp_path)


def test_no_whiteouts_when_everything_is_squashed(feature_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _slim(feature_image, "v1", out, compression="gzip")
    (layer,) = layer_members(out, "v1")
    assert not any(m.is_whiteout or m.is_opaque for m in layer)
    names = [m.name.rstrip("/") for m in layer]
    for i, name in enumerate(names):  # parents before children
        parent = name.rpartition("/")[0]
        if parent and parent in names:
            assert names.index(parent) < i, name


def test_opaque_directory_from_umoci_insert(tmp_path: Path) -> None:
    def fill(d: Path) -> None:
        (d / "new").mkdir()
        (d / "new" / "file").write_text("inserted")

    layout = tmp_path / "img"
    build_image(layout, "v1", [Diff(base_layer), Diff(lambda r: (r / "top").write_text("t")),
                               Insert("/d", fill, opaque=True)])
    out = tmp_path / "out"
    _slim(layout, "v1", out, compression="gzip", base=1)
    _same_tree(layout, out, "v1", tmp_path)
    whiteouts = [m.name for m in layer_members(out, "v1", strict=False)[1] if m.is_opaque]
    assert whiteouts == ["d/.wh..wh..opq"]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_umoci_images_merge_exactly(tmp_path: Path, seed: int) -> None:
    layout = tmp_path / "img"
    build_image(layout, "v1", random_layers(seed, count=4))
    for base in (0, 2):
        out = tmp_path / f"out{base}"
        _slim(layout, "v1", out, compression="gzip", base=base)
        _same_tree(layout, out, "v1", tmp_path / f"cmp{base}")


def test_same_digests_twice_and_whatever_jobs(feature_image: Path, tmp_path: Path) -> None:
    a = _slim(feature_image, "v1", tmp_path / "a", merge="auto", jobs=1)
    b = _slim(feature_image, "v1", tmp_path / "b", merge="auto")
    c = _slim(feature_image, "v1", tmp_path / "c", merge="auto", jobs=3)
    assert a.digest == b.digest == c.digest
    assert (tmp_path / "a/index.json").read_bytes() == (tmp_path / "b/index.json").read_bytes()


def test_config_diff_ids_match_layers(feature_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = _slim(feature_image, "v1", out, compression="zstd", merge="auto")
    members = layer_members(out, "v1")  # checks every blob digest and diff_id
    assert len(members) == len(report.images[0].layers)
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"


def test_hardlink_survives_when_its_target_is_stripped(tmp_path: Path) -> None:
    from support.imagetools import CAP_NET_BIND_SERVICE, HARDLINKS, write_file

    def layer(root: Path) -> None:
        write_file(root / "usr/bin/tool", b"\x7fELF tool" * 100, mode=0o4755, uid=7,
                   xattrs={"security.capability": CAP_NET_BIND_SERVICE})
        (root / "opt/keep").mkdir(parents=True)
        import os
        os.link(root / "usr/bin/tool", root / "opt/keep/tool")
        os.link(root / "usr/bin/tool", root / "opt/keep/tool2")

    layout = tmp_path / "img"
    build_image(layout, "v1", [Diff(layer), Diff(lambda r: (r / "x").write_text("x"))])
    out = tmp_path / "out"
    _slim(layout, "v1", out, compression="gzip", strip=("/usr/bin/tool",), merge="none")
    before = snapshot(unpack_tree(layout, "v1", tmp_path / "a"))
    after = snapshot(unpack_tree(out, "v1", tmp_path / "b"))
    assert "usr/bin/tool" not in after
    assert after["opt/keep/tool"] == before["opt/keep/tool"]
    assert after["opt/keep/tool2"] == before["opt/keep/tool2"]
    assert after[HARDLINKS] == (("opt/keep/tool", "opt/keep/tool2"),)
