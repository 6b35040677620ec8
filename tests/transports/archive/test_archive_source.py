"""Reading ``docker-archive`` and ``oci-archive`` tars in place: both shapes ``docker save``
writes (classic ``<id>/layer.tar``, and Docker 25+'s OCI layout inside the tar), archives that
skopeo writes, image selection, and bad input (one line, exit 1, destination untouched)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import slimmer
from slimmer.cli import main
from slimmer.errors import BlobError, InputError
from slimmer.oci.media import DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_MANIFEST
from slimmer.options import SlimOptions
from slimmer.transports import open_source

from support.archives import (
    blob_member,
    classic_members,
    docker25_archive,
    docker_archive,
    write_tar,
)
from support.layoututil import make_image, make_index, platformed, snapshot, tagged, write_layout
from support.registry_server import SKOPEO, skopeo

EXAMPLE = "oci:testdata/example:latest"
PASS = SlimOptions(profiles=("none",), merge="none", compression="keep")
LAYERS = [{"etc/a": b"a" * 3000, "usr/share/doc/x/README": b"doc" * 500},
          {"etc/b": b"b" * 100}]


def _one(tmp_path: Path, **kw: object) -> Path:
    return docker_archive(tmp_path / "app.tar", [classic_members(LAYERS, **kw)])  # type: ignore[arg-type]


def test_classic_docker_save_shape(tmp_path: Path) -> None:
    archive = _one(tmp_path)
    root = open_source(f"docker-archive:{archive}").resolve()
    image = root.images[0]
    assert image.manifest.media_type == DOCKER_MANIFEST
    # Uncompressed layers are named by their diff_id and verified against it while read.
    assert [ly.descriptor.digest for ly in image.layers] == list(image.config.diff_ids)
    assert {ly.descriptor.media_type for ly in image.layers} == {DOCKER_LAYER_TAR}
    # Same archive, same made manifest: the source digest is stable.
    assert open_source(f"docker-archive:{archive}").resolve().descriptor == root.descriptor

    report = slimmer.slim(f"docker-archive:{archive}", f"oci:{tmp_path / 'out'}:v")
    assert report.images[0].removed_files == 1          # the README (docs profile)
    back = open_source(f"oci:{tmp_path / 'out'}:v").resolve().images[0]
    assert len(back.layers) == 1                        # two small layers merged


def test_gzip_layers_and_symlinked_duplicates(tmp_path: Path) -> None:
    members, entry = classic_members(LAYERS, gzip_layers=True)
    # Classic docker save writes a repeated layer as a symlink to the first copy.
    members.append(("dup/", None))
    members.append(("dup/layer.tar", "->../" + entry["Layers"][0]))
    entry = {**entry, "Layers": [*entry["Layers"], "dup/layer.tar"]}
    config = json.loads(dict(members)[entry["Config"]])          # type: ignore[arg-type]
    config["rootfs"]["diff_ids"].append(config["rootfs"]["diff_ids"][0])
    config["history"].append({"created_by": "again"})
    raw = json.dumps(config).encode()
    members.append(("cfg.json", raw))
    entry["Config"] = "cfg.json"
    archive = docker_archive(tmp_path / "gz.tar", [(members, entry)])
    image = open_source(f"docker-archive:{archive}").resolve().images[0]
    assert {ly.descriptor.media_type for ly in image.layers} == {DOCKER_LAYER_GZIP}
    assert image.layers[0].descriptor.digest == image.layers[2].descriptor.digest
    out = tmp_path / "out"
    slimmer.slim(f"docker-archive:{archive}", f"oci:{out}:v", PASS)
    # keep: the gzip members pass through byte-identical, found by their hash.
    back = open_source(f"oci:{out}:v").resolve().images[0]
    assert [ly.descriptor.digest for ly in back.layers] == \
        [ly.descriptor.digest for ly in image.layers]


def test_docker25_shape_and_oci_view(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    desc = make_image(layout, LAYERS)
    write_layout(layout, [tagged(desc, "1")])
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"][7:]).read_text())
    archive = docker25_archive(tmp_path / "d25.tar", layout, [{
        "Config": blob_member(manifest["config"]["digest"]), "RepoTags": ["app:1"],
        "Layers": [blob_member(ly["digest"]) for ly in manifest["layers"]]}])
    as_docker = open_source(f"docker-archive:{archive}:app:1").resolve().images[0]
    # Compressed members in blobs/sha256/ keep their digests: the original layer blobs.
    assert [ly.descriptor.digest for ly in as_docker.layers] == \
        [ly["digest"] for ly in manifest["layers"]]
    as_oci = open_source(f"oci-archive:{archive}:1").resolve()
    assert as_oci.descriptor.digest == desc["digest"]    # the original manifest, as pushed
    out = tmp_path / "out"
    slimmer.slim(f"oci-archive:{archive}:1", f"oci:{out}:v", PASS)
    assert [ly.descriptor.digest for ly in open_source(f"oci:{out}:v").resolve()
            .images[0].layers] == [ly["digest"] for ly in manifest["layers"]]


def test_oci_archive_of_one_platform_of_an_index(tmp_path: Path) -> None:
    """docker save (containerd store) keeps the index but only the local platform's blobs."""
    layout = tmp_path / "layout"
    amd = make_image(layout, arch="amd64")
    arm = make_image(layout, arch="arm64")
    index = make_index(layout, [platformed(amd, "linux", "amd64"),
                                platformed(arm, "linux", "arm64")])
    write_layout(layout, [tagged(index, "1")])
    (layout / "blobs" / "sha256" / arm["digest"][7:]).unlink()
    archive = write_tar(tmp_path / "one.tar", [
        (str(p.relative_to(layout)), p.read_bytes()) for p in sorted(layout.rglob("*"))
        if p.is_file()])
    root = open_source(f"oci-archive:{archive}:1").resolve()
    assert [str(i.platform) for i in root.images] == ["linux/amd64"]
    assert [d.digest for d in root.skipped] == [arm["digest"]]


def test_selecting_one_of_several_images(tmp_path: Path) -> None:
    first = classic_members(LAYERS, ("team/app:1",), prefix="a")
    second = classic_members([{"etc/c": b"c"}], ("team/app:2", "other:latest"), prefix="b")
    archive = docker_archive(tmp_path / "two.tar", [first, second])
    with pytest.raises(InputError, match="holds 2 images; add :NAME:TAG or :@N to choose one "
                                         r"\(tags: team/app:1, team/app:2, other:latest\)"):
        open_source(f"docker-archive:{archive}").resolve()
    picked = open_source(f"docker-archive:{archive}:docker.io/team/app:2").resolve()
    assert len(picked.images[0].layers) == 1
    assert len(open_source(f"docker-archive:{archive}:other").resolve().images[0].layers) == 1
    assert len(open_source(f"docker-archive:{archive}:@0").resolve().images[0].layers) == 2
    with pytest.raises(InputError, match="no image tagged team/app:3"):
        open_source(f"docker-archive:{archive}:team/app:3").resolve()
    with pytest.raises(InputError, match="no image @2, the archive holds 2"):
        open_source(f"docker-archive:{archive}:@2").resolve()


@pytest.mark.integration
@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (scripts/setup)")
def test_archives_written_by_skopeo(tmp_path: Path) -> None:
    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    skopeo("copy", EXAMPLE, f"docker-archive:{docker_tar}:team/example:1")
    skopeo("copy", EXAMPLE, f"oci-archive:{oci_tar}:v1")
    source = open_source(EXAMPLE).resolve().images[0]
    for ref in (f"docker-archive:{docker_tar}", f"docker-archive:{docker_tar}:team/example:1",
                f"oci-archive:{oci_tar}:v1"):
        image = open_source(ref).resolve().images[0]
        assert image.config.diff_ids == source.config.diff_ids
    a = slimmer.slim(f"docker-archive:{docker_tar}", f"oci:{tmp_path / 'a'}:x")
    b = slimmer.slim(f"oci-archive:{oci_tar}:v1", f"oci:{tmp_path / 'b'}:x")
    c = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'c'}:x")
    # The same tars give the same layers (the manifests differ: annotations name the source).
    layers = [[ly.digest for ly in r.images[0].layers] for r in (a, b, c)]
    assert layers[0] == layers[1] == layers[2]


# -- bad input -------------------------------------------------------------------------------

def _corrupt(tmp_path: Path, case: str) -> str:
    """An archive reference that is broken in the way ``case`` names."""
    members, entry = classic_members(LAYERS)
    if case == "no manifest.json":
        return f"docker-archive:{write_tar(tmp_path / 'x.tar', members)}"
    if case == "layer path escapes":
        entry["Layers"][0] = "../" + entry["Layers"][0]
    elif case == "layer symlink escapes":
        members = [(n, "->../../etc/passwd" if n == entry["Layers"][0] else c)
                   for n, c in members]
    elif case == "layer content differs":     # one byte of etc/b's data changed
        members = [(n, _flip(c, 600) if n == entry["Layers"][1] else c) for n, c in members]
    elif case == "two images, no :REF":
        second = classic_members([{"etc/c": b"c"}], ("app:2",), prefix="b")
        return f"docker-archive:{docker_archive(tmp_path / 'x.tar', [(members, entry), second])}"
    elif case == "manifest.json malformed":
        return f"docker-archive:{docker_archive(tmp_path / 'x.tar', [(members, entry)], {'a': 1})}"
    archive = docker_archive(tmp_path / "x.tar", [(members, entry)])
    if case == "truncated":
        archive.write_bytes(archive.read_bytes()[:5000])
    return f"docker-archive:{archive}"


def _flip(content: bytes | str | None, at: int) -> bytes:
    assert isinstance(content, bytes)
    return content[:at] + bytes([content[at] ^ 1]) + content[at + 1:]


def _oci_size_mismatch(tmp_path: Path) -> str:
    layout = tmp_path / "layout"
    desc = make_image(layout, LAYERS)
    write_layout(layout, [tagged(desc, "1")])
    blob = layout / "blobs" / "sha256" / desc["digest"][7:]
    manifest = json.loads(blob.read_text())
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    layer.write_bytes(layer.read_bytes() + b"\0")        # one byte more than its descriptor
    archive = write_tar(tmp_path / "x.tar", [
        (str(p.relative_to(layout)), p.read_bytes()) for p in sorted(layout.rglob("*"))
        if p.is_file()])
    shutil.rmtree(layout)
    return f"oci-archive:{archive}:1"


@pytest.mark.parametrize("case, fragment", [
    ("no manifest.json", "manifest.json: missing, not a docker archive"),
    ("layer path escapes", "escapes the archive"),
    ("layer symlink escapes", "which escapes the archive"),
    ("layer content differs", "digest mismatch"),
    ("two images, no :REF", "holds 2 images; add :NAME:TAG or :@N"),
    ("manifest.json malformed", "manifest.json: not a list of images"),
    ("truncated", "truncated"),
    ("member size differs", "blob is 1"),
])
def test_bad_archives_one_line_exit_1_destination_untouched(tmp_path: Path, case: str,
                                                            fragment: str) -> None:
    source = _oci_size_mismatch(tmp_path) if case == "member size differs" \
        else _corrupt(tmp_path, case)
    dest = tmp_path / "dest"
    slimmer.slim(EXAMPLE, f"oci:{dest}:old")
    before = snapshot(dest)
    result = CliRunner().invoke(main, ["push", source, f"oci:{dest}:new"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slim: error: reading "), lines
    assert fragment in lines[0]
    assert snapshot(dest) == before
    archive_out = tmp_path / "out.tar"
    result = CliRunner().invoke(main, ["push", source, f"oci-archive:{archive_out}:x"])
    assert result.exit_code == 1 and not archive_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tar")) == []


def test_blob_error_is_a_blob_error(tmp_path: Path) -> None:
    root = open_source(_corrupt(tmp_path, "layer content differs")).resolve()
    with pytest.raises(BlobError, match="digest mismatch"):
        with root.images[0].layers[1].open_compressed() as stream:
            while stream.read(1 << 16):
                pass
