"""Tests of the image-building helper itself (tests/imagetools.py) against real umoci/skopeo."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

from support import REPO
from support.imagetools import (
    CAP_NET_BIND_SERVICE,
    HARDLINKS,
    ImageToolError,
    Insert,
    RawTar,
    apply_layers,
    build_image,
    diff_snapshots,
    image_config,
    layer_members,
    members_by_name,
    missing_tools,
    random_layers,
    read_manifest,
    run_tool,
    skopeo_inspect,
    snapshot,
    unpack_tree,
    write_file,
)
from support.trees import DEEP_DIR, LAYERS, LONG_NAME

needs_tools = pytest.mark.skipif(
    missing_tools("umoci", "skopeo") is not None, reason=str(missing_tools("umoci", "skopeo"))
)
integration = [pytest.mark.integration, needs_tools]



@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if missing_tools("umoci", "skopeo"):
        pytest.skip(str(missing_tools("umoci", "skopeo")))
    layout = tmp_path_factory.mktemp("image") / "layout"
    build_image(layout, "v1", LAYERS, config={"Entrypoint": ["/bin/app"], "Env": ["PATH=/bin"], "WorkingDir": "/w"})
    return layout


@pytest.mark.integration
@needs_tools
def test_unpacked_tree_equals_applied_layers(image: Path, tmp_path: Path) -> None:
    expected = snapshot(apply_layers(LAYERS, tmp_path / "expected"))
    actual = snapshot(unpack_tree(image, "v1", tmp_path / "bundle"))
    assert diff_snapshots(expected, actual) == []

    assert actual[HARDLINKS] == (("f", "f2"),)
    assert actual["f"].xattrs == (("user.note", b"new"),)
    assert actual["usr/bin/ping"].xattrs == (("security.capability", CAP_NET_BIND_SERVICE),)
    su = actual["usr/bin/su"]
    assert (su.mode, su.uid, su.gid) == (0o4755, 1_000_000, 1_000_001)
    assert actual["fifo"].type == "fifo" and actual["fifo"].mode == 0o600
    assert actual["dev/null"][:2] == ("char", 0o666) and actual["dev/null"].rdev == (1, 3)
    assert actual[f"{DEEP_DIR}/leaf"].size == 4
    assert actual[LONG_NAME].type == "file"
    assert actual["long-symlink"].target.endswith("t" * 200)
    assert actual["sparse"].size == (1 << 20) + 3
    assert actual["etc/passwd"].mode == 0o600
    assert "e" not in actual and "g" not in actual and "d/a" not in actual
    assert actual["d/c"].type == "file"


@pytest.mark.integration
@needs_tools
def test_layer_members_show_umoci_whiteouts(image: Path) -> None:
    base, changes = layer_members(image, "v1")
    first = members_by_name(base)
    assert first["f2"].type == "hardlink" and first["f2"].linkname == "f"
    assert first["g"].type == "hardlink" and first["g"].linkname == "f"
    assert dict(first["usr/bin/ping"].pax)["SCHILY.xattr.security.capability"] == CAP_NET_BIND_SERVICE
    assert dict(first["f"].pax)["SCHILY.xattr.user.note"] == b"\x00\xffbinary"
    assert first["fifo"].type == "fifo" and first["dev/null"].type == "char"
    assert first[f"{DEEP_DIR}/leaf"].pax[0] == ("path", f"{DEEP_DIR}/leaf")
    assert first["usr/bin/su"].mode == 0o4755 and first["usr/bin/su"].uid == 1_000_000
    assert [m.name for m in base] == sorted(m.name for m in base)

    second = members_by_name(changes)
    whiteouts = sorted(m.name for m in changes if m.is_whiteout)
    # umoci 0.4.7: one whiteout per deleted path, no opaque directory for the recreated d/
    assert whiteouts == [".wh.e", ".wh.g", "d/.wh.a", "d/.wh.b"]
    assert not any(m.is_opaque for m in changes)
    assert second["d/c"].type == "file"
    # f changed (through f2): both paths re-emitted, the link within the layer
    assert second["f"].type == "file" and second["f"].size == len("changed through f2")
    assert second["f2"].type == "hardlink" and second["f2"].linkname == "f"
    assert second["etc/passwd"].mode == 0o600  # mode-only change re-emits the file


@pytest.mark.integration
@needs_tools
def test_config_history_and_skopeo(image: Path) -> None:
    config = image_config(image, "v1")
    assert config["config"]["Entrypoint"] == ["/bin/app"]
    assert config["config"]["WorkingDir"] == "/w"
    assert "PATH=/bin" in config["config"]["Env"]
    assert [h.get("created_by") for h in config["history"]][:2] == ["base", "changes"]
    assert config["history"][-1]["empty_layer"] is True
    assert len(config["rootfs"]["diff_ids"]) == 2
    inspected = skopeo_inspect(image, "v1")
    assert len(inspected["Layers"]) == 2


@pytest.mark.integration
@needs_tools
def test_build_is_repeatable(image: Path, tmp_path: Path) -> None:
    again = tmp_path / "layout"
    build_image(again, "v1", LAYERS, config={"Entrypoint": ["/bin/app"], "Env": ["PATH=/bin"], "WorkingDir": "/w"})
    assert read_manifest(again, "v1") == read_manifest(image, "v1")


@pytest.mark.integration
@needs_tools
def test_zstd_layers_are_read_and_unpacked(image: Path, tmp_path: Path) -> None:
    zstd_layout = tmp_path / "zstd"
    run_tool("skopeo", "copy", "--quiet", "--dest-compress-format", "zstd", f"oci:{image}:v1", f"oci:{zstd_layout}:v1")
    manifest = read_manifest(zstd_layout, "v1")
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert image_config(zstd_layout, "v1")["rootfs"] == image_config(image, "v1")["rootfs"]
    assert layer_members(zstd_layout, "v1") == layer_members(image, "v1")
    with pytest.raises(ImageToolError, match="zstd"):
        unpack_tree(zstd_layout, "v1", tmp_path / "refused", convert_zstd=False)
    original = snapshot(unpack_tree(image, "v1", tmp_path / "a"))
    converted = snapshot(unpack_tree(zstd_layout, "v1", tmp_path / "b"))
    assert diff_snapshots(original, converted) == []


@pytest.mark.integration
@needs_tools
def test_opaque_directory_from_umoci_insert(tmp_path: Path) -> None:
    def old(root: Path) -> None:
        write_file(root / "opt/app/old", "old")
        write_file(root / "opt/app/sub/x", "x")
        write_file(root / "keep", "keep")

    def new(directory: Path) -> None:
        write_file(directory / "new", "new")

    layout = tmp_path / "layout"
    build_image(layout, "t", [old, Insert("/opt/app", new, opaque=True), Insert("/keep", whiteout=True)])
    tree = snapshot(unpack_tree(layout, "t", tmp_path / "bundle"))
    assert sorted(p for p in tree if p.startswith("opt/app/")) == ["opt/app/new"]
    assert "keep" not in tree

    with pytest.raises(ImageToolError, match="tar ends early"):
        layer_members(layout, "t")
    _, opaque, whiteout = layer_members(layout, "t", strict=False)
    assert [m.name for m in opaque] == ["opt/app/.wh..wh..opq", "opt/app", "opt/app/new"]
    assert opaque[0].is_opaque and not opaque[0].is_whiteout
    assert [m.name for m in whiteout] == [".wh.keep"]


@pytest.mark.integration
@needs_tools
def test_raw_tar_layer(tmp_path: Path) -> None:
    def old(root: Path) -> None:
        write_file(root / "etc/conf.d/a", "a")
        write_file(root / "etc/conf.d/b", "b")

    def raw(tf: tarfile.TarFile) -> None:
        tf.addfile(tarfile.TarInfo("etc/conf.d/.wh..wh..opq"))
        info = tarfile.TarInfo("etc/conf.d/c")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"c"))

    layout = tmp_path / "layout"
    build_image(layout, "t", [old, RawTar(raw, created_by="raw opaque")])
    tree = snapshot(unpack_tree(layout, "t", tmp_path / "bundle"))
    assert sorted(p for p in tree if p.startswith("etc/conf.d/")) == ["etc/conf.d/c"]
    assert [m.name for m in layer_members(layout, "t")[1]] == ["etc/conf.d/.wh..wh..opq", "etc/conf.d/c"]


@pytest.mark.integration
@needs_tools
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_layers_roundtrip(seed: int, tmp_path: Path) -> None:
    layers = random_layers(seed, count=4)
    layout = tmp_path / "layout"
    build_image(layout, "r", layers)
    expected = snapshot(apply_layers(random_layers(seed, count=4), tmp_path / "expected"))
    actual = snapshot(unpack_tree(layout, "r", tmp_path / "bundle"))
    assert diff_snapshots(expected, actual) == []
    assert len(layer_members(layout, "r")) == 4


@pytest.mark.integration
@needs_tools
def test_tool_errors_carry_stderr(tmp_path: Path) -> None:
    with pytest.raises(ImageToolError) as info:
        unpack_tree(tmp_path / "no-such-layout", "t", tmp_path / "bundle")
    assert "index.json" in str(info.value)
    build_image(tmp_path / "layout", "t", [])
    with pytest.raises(ImageToolError, match=r"umoci unpack .*failed with exit code \d+:\n.+"):
        run_tool("umoci", "unpack", "--image", f"{tmp_path / 'layout'}:missing", tmp_path / "b")

    def boom(root: Path) -> None:
        os.mkfifo(root / "x")
        raise RuntimeError("layer function failed")

    with pytest.raises(RuntimeError, match="layer function failed"):
        build_image(tmp_path / "layout", "u", [boom])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".imagetools-")]


def test_diff_snapshots_reports_each_difference(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write_file(root / "same", "same")
        write_file(root / "changed", "one", mode=0o644)
        os.link(root / "same", root / "same-link")
    write_file(a / "only-a", "x")
    os.symlink("t", b / "only-b")
    (b / "changed").write_text("two")
    os.chmod(b / "changed", 0o600)
    os.unlink(b / "same-link")
    os.link(b / "changed", b / "same-link")

    diffs = diff_snapshots(snapshot(a), snapshot(b))
    assert "only-a: only in expected (file)" in diffs
    assert "only-b: only in actual (symlink)" in diffs
    assert "changed: mode expected=0o644 actual=0o600" in diffs
    assert any(d.startswith("changed: sha256 ") for d in diffs)
    assert "hardlink group only in expected: same = same-link" in diffs
    assert "hardlink group only in actual: changed = same-link" in diffs
    assert not any(d.startswith("same:") for d in diffs)
    assert diff_snapshots(snapshot(a), snapshot(a)) == []


EXAMPLE = REPO / "testdata" / "example"


@pytest.mark.integration
@needs_tools
def test_committed_example_matches_make_example(tmp_path: Path) -> None:
    """testdata/example is what scripts/make-example builds (same tars, config and history)."""
    script = REPO / "scripts" / "make-example"
    run_tool(sys.executable, script, "--output", tmp_path / "example")
    fresh, committed = image_config(tmp_path / "example", "latest"), image_config(EXAMPLE, "latest")
    assert fresh == committed, "testdata/example is stale: run scripts/make-example and commit it"


@pytest.mark.integration
@needs_tools
def test_example_image_contents(tmp_path: Path) -> None:
    layers = layer_members(EXAMPLE, "latest")  # also verifies every blob digest and diff_id
    assert len(layers) == 6
    assert [m.name for m in layers[5] if m.is_whiteout] == ["var/log/.wh.apt"]
    gcc_link = members_by_name(layers[1])["usr/bin/x86_64-linux-gnu-gcc-12"]
    assert (gcc_link.type, gcc_link.linkname) == ("hardlink", "usr/bin/gcc-12")

    tree = snapshot(unpack_tree(EXAMPLE, "latest", tmp_path / "bundle"))
    assert "var/log/apt" not in tree and "var/log" in tree
    assert tree["usr/bin/passwd"].mode == 0o4755
    assert tree["usr/bin/ping"].xattrs == (("security.capability", CAP_NET_BIND_SERVICE),)
    assert ("usr/bin/gcc-12", "usr/bin/x86_64-linux-gnu-gcc-12") in tree[HARDLINKS]
    assert tree["app/models/tokenizer.bin"].size == 4096
    rootfs = tmp_path / "bundle" / "rootfs"
    assert json.loads((rootfs / "app/config.json").read_text())["debug"] is False
    assert (rootfs / "app/main.py").read_text().startswith("#!/usr/local/bin/python3\n")
    data = (rootfs / "app/models/model.safetensors").read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    start, end = header["weight"]["data_offsets"]
    assert header["weight"]["dtype"] == "F32" and end - start == 4 * 512 * 1024
    assert len(data) == 8 + header_len + end

    config = image_config(EXAMPLE, "latest")["config"]
    assert config["Entrypoint"] == ["/app/main.py"] and config["WorkingDir"] == "/app"
    assert sum(layer["size"] for layer in read_manifest(EXAMPLE, "latest")["layers"]) < 3 * 1024 * 1024


@pytest.mark.integration
@needs_tools
def test_image_built_on_a_base_shares_its_layers(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_image(layout, "base", [lambda root: write_file(root / "etc/os", "base")])
    build_image(layout, "app", [lambda root: write_file(root / "app/run", "app")], base="base")
    base_layers = read_manifest(layout, "base")["layers"]
    app_layers = read_manifest(layout, "app")["layers"]
    assert len(app_layers) == 2 and app_layers[0] == base_layers[0]
    tree = snapshot(unpack_tree(layout, "app", tmp_path / "bundle"))
    assert tree["etc/os"].size == 4 and tree["app/run"].size == 3
