"""Tests for slimmer.sources.layout: selection, index walking and verification errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from slimmer.errors import BlobError, InputError
from slimmer.oci.image import Root
from slimmer.oci.media import DOCKER_CONFIG
from slimmer.oci.model import Platform
from slimmer.oci.refs import LayoutRef, parse_reference
from slimmer.transports.layout.sink import LayoutSink
from slimmer.transports.layout.source import LayoutSource

from support.layoututil import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    REF_NAME,
    blob_path,
    make_image,
    make_index,
    platformed,
    put_blob,
    snapshot,
    tagged,
    tar_gz,
    write_layout,
    write_with_sink,
)


def source(path: Path, suffix: str = "") -> LayoutSource:
    return LayoutSource(parse_reference(f"oci:{path}{suffix}"))


def resolve(path: Path, suffix: str = "", platforms: tuple[Platform, ...] = ()) -> Root:
    return source(path, suffix).resolve(platforms)


def error(exc_type: type[Exception], path: Path, suffix: str = "",
          platforms: tuple[Platform, ...] = ()) -> str:
    """Resolve expecting ``exc_type``; return its (one-line) message."""
    with pytest.raises(exc_type) as info:
        resolve(path, suffix, platforms)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture
def two_tags(tmp_path: Path) -> tuple[Path, dict, dict]:
    layout = tmp_path / "lay"
    a = make_image(layout, [{"a": b"1"}])
    b = make_image(layout, [{"b": b"2"}, {"c": b"3"}])
    write_layout(layout, [tagged(a, "a"), tagged(b, "b")])
    return layout, a, b


# -- selection ----------------------------------------------------------------------------------

def test_select_by_tag(two_tags: tuple[Path, dict, dict]) -> None:
    layout, _, b = two_tags
    root = resolve(layout, ":b")
    assert root.name == f"oci:{layout}:b"
    assert root.index is None and root.skipped == ()
    assert root.descriptor.digest == b["digest"]
    (image,) = root.images
    assert image.manifest.digest == b["digest"]
    assert len(image.layers) == 2
    assert [layer.diff_id for layer in image.layers] == list(image.config.diff_ids)
    assert image.platform == Platform("linux", "amd64")


def test_select_by_digest(two_tags: tuple[Path, dict, dict]) -> None:
    layout, a, _ = two_tags
    root = resolve(layout, "@" + a["digest"])
    assert root.images[0].manifest.digest == a["digest"]


def test_select_unlisted_digest_present_in_blobs(two_tags: tuple[Path, dict, dict]) -> None:
    layout, _, _ = two_tags
    hidden = make_image(layout, [{"hidden": b"x"}], manifest_media_type=False)
    root = resolve(layout, "@" + hidden["digest"])
    assert root.images[0].manifest.digest == hidden["digest"]


def test_select_unknown_digest(two_tags: tuple[Path, dict, dict]) -> None:
    layout, _, _ = two_tags
    message = error(InputError, layout, "@sha256:" + "0" * 64)
    assert f"oci:{layout}" in message and "sha256:000000000000" in message


def test_default_single_entry(tmp_path: Path) -> None:
    a = make_image(tmp_path, [{"a": b"1"}])
    write_layout(tmp_path, [a])
    assert resolve(tmp_path).images[0].manifest.digest == a["digest"]


def test_default_with_several_entries_asks_for_tag(two_tags: tuple[Path, dict, dict]) -> None:
    layout, _, _ = two_tags
    message = error(InputError, layout)
    assert "TAG" in message and "a, b" in message


def test_unknown_tag_lists_available(two_tags: tuple[Path, dict, dict]) -> None:
    layout, _, _ = two_tags
    message = error(InputError, layout, ":nope")
    assert message == f"reading oci:{layout}: unknown tag 'nope' (available tags: a, b)"


def test_missing_media_type_in_index_json_is_sniffed(tmp_path: Path) -> None:
    a = make_image(tmp_path)
    del a["mediaType"]
    write_layout(tmp_path, [tagged(a, "t")])
    root = resolve(tmp_path, ":t")
    assert root.descriptor.media_type == "application/vnd.oci.image.manifest.v1+json"


def test_docker_schema2_manifest(tmp_path: Path) -> None:
    d = make_image(tmp_path, [{"x": b"x"}], docker=True)
    write_layout(tmp_path, [tagged(d, "d")])
    (image,) = resolve(tmp_path, ":d").images
    assert image.manifest.media_type == DOCKER_MANIFEST
    assert image.manifest.config.media_type == DOCKER_CONFIG
    with image.layers[0].open_compressed() as stream:
        assert stream.read() == blob_path(tmp_path, image.layers[0].descriptor.digest).read_bytes()


# -- indexes ------------------------------------------------------------------------------------

def multi_arch(layout: Path) -> tuple[dict, dict, dict, dict]:
    amd = platformed(make_image(layout, arch="amd64"), "linux", "amd64")
    arm = platformed(make_image(layout, arch="arm64", variant="v8"), "linux", "arm64", "v8")
    attestation = {**platformed(make_image(layout, [{"att.json": b"{}"}], os_=None, arch=None),
                                "unknown", "unknown"),
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                   "vnd.docker.reference.digest": amd["digest"]}}
    artifact = {"mediaType": "application/vnd.example.sbom+json",
                **put_blob(layout, b'{"sbom": true}')}
    return amd, arm, attestation, artifact


def test_index_platforms_and_skipped(tmp_path: Path) -> None:
    amd, arm, att, artifact = multi_arch(tmp_path)
    idx = make_index(tmp_path, [amd, arm, att, artifact])
    write_layout(tmp_path, [tagged(idx, "multi")])
    root = resolve(tmp_path, ":multi")
    assert root.index is not None and root.index.digest == idx["digest"]
    assert root.descriptor.digest == idx["digest"]
    assert [i.manifest.digest for i in root.images] == [amd["digest"], arm["digest"]]
    assert [str(i.platform) for i in root.images] == ["linux/amd64", "linux/arm64/v8"]
    assert [d.digest for d in root.skipped] == [att["digest"], artifact["digest"]]

    root = resolve(tmp_path, ":multi", (Platform("linux", "arm64"),))
    assert [i.manifest.digest for i in root.images] == [arm["digest"]]
    assert [d.digest for d in root.skipped] == [amd["digest"], att["digest"], artifact["digest"]]


def test_index_platform_without_match(tmp_path: Path) -> None:
    amd, arm, att, _ = multi_arch(tmp_path)
    write_layout(tmp_path, [tagged(make_index(tmp_path, [amd, arm, att]), "m")])
    message = error(InputError, tmp_path, ":m", (Platform("linux", "s390x"),))
    assert "linux/s390x" in message
    assert "available: linux/amd64, linux/arm64/v8" in message


def test_index_entry_platform_from_config(tmp_path: Path) -> None:
    bare = make_image(tmp_path, arch="riscv64")  # no platform field in the index entry
    write_layout(tmp_path, [make_index(tmp_path, [bare])])
    root = resolve(tmp_path, "", (Platform("linux", "riscv64"),))
    assert [str(i.platform) for i in root.images] == ["linux/riscv64"]


def test_index_of_only_attestations(tmp_path: Path) -> None:
    _, _, att, artifact = multi_arch(tmp_path)
    write_layout(tmp_path, [make_index(tmp_path, [att, artifact])])
    assert "no image with a platform" in error(InputError, tmp_path)


def test_nested_index(tmp_path: Path) -> None:
    amd, arm, att, _ = multi_arch(tmp_path)
    inner = make_index(tmp_path, [amd, arm])
    outer = make_index(tmp_path, [inner, att])
    write_layout(tmp_path, [tagged(outer, "n")])
    root = resolve(tmp_path, ":n")
    assert root.index is not None and root.index.digest == outer["digest"]
    assert [i.manifest.digest for i in root.images] == [amd["digest"], arm["digest"]]
    assert [d.digest for d in root.skipped] == [att["digest"]]
    root = resolve(tmp_path, ":n", (Platform("linux", "amd64"),))
    assert [i.manifest.digest for i in root.images] == [amd["digest"]]


def test_docker_manifest_list(tmp_path: Path) -> None:
    d = platformed(make_image(tmp_path, docker=True), "linux", "amd64")
    raw = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                      "manifests": [d]}).encode()
    lst = {"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
           **put_blob(tmp_path, raw)}
    write_layout(tmp_path, [lst])
    root = resolve(tmp_path)
    assert root.index is not None and [i.manifest.digest for i in root.images] == [d["digest"]]


# -- layers -------------------------------------------------------------------------------------

def test_layer_opener_returns_fresh_stream(tmp_path: Path) -> None:
    a = make_image(tmp_path, [{"f": b"data" * 1000}])
    write_layout(tmp_path, [a])
    before = snapshot(tmp_path)
    (layer,) = resolve(tmp_path).images[0].layers
    expected = blob_path(tmp_path, layer.descriptor.digest).read_bytes()
    first = layer.open_compressed()
    second = layer.open_compressed()
    try:
        assert first is not second
        assert first.read(10) == expected[:10]
        assert second.read() == expected
        assert first.read() == expected[10:]
    finally:
        first.close()
        second.close()
    with layer.open_compressed() as third:
        assert third.read() == expected
    assert snapshot(tmp_path) == before  # the source never writes


def test_resolve_opens_no_layer(tmp_path: Path) -> None:
    a = make_image(tmp_path, [{"f": b"1"}])
    write_layout(tmp_path, [a])
    layer_digest = json.loads(blob_path(tmp_path, a["digest"]).read_bytes())["layers"][0]["digest"]
    blob_path(tmp_path, layer_digest).unlink()
    (layer,) = resolve(tmp_path).images[0].layers
    with pytest.raises(BlobError, match=r"blob sha256:[0-9a-f]{12}: missing$"):
        layer.open_compressed()


def test_layer_digest_mismatch_at_eof(tmp_path: Path) -> None:
    a = make_image(tmp_path, [{"f": b"1"}])
    write_layout(tmp_path, [a])
    (layer,) = resolve(tmp_path).images[0].layers
    path = blob_path(tmp_path, layer.descriptor.digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with layer.open_compressed() as stream:
        with pytest.raises(BlobError, match="digest mismatch") as info:
            while stream.read(7):
                pass
    assert f"oci:{tmp_path}" in str(info.value)


# -- malformed input ----------------------------------------------------------------------------

def test_malformed_index_json(tmp_path: Path) -> None:
    write_layout(tmp_path, [])
    (tmp_path / "index.json").write_text("{not json")
    message = error(InputError, tmp_path)
    assert message.startswith(f"reading oci:{tmp_path} index.json: not valid JSON (")


def test_index_json_missing_manifests(tmp_path: Path) -> None:
    write_layout(tmp_path, [])
    (tmp_path / "index.json").write_text('{"schemaVersion": 2}')
    assert "index.json: missing field 'manifests'" in error(InputError, tmp_path)


def test_index_json_bad_entry(tmp_path: Path) -> None:
    write_layout(tmp_path, [{"mediaType": OCI_INDEX, "size": 3}])
    assert "index.json entry 0: missing field 'digest'" in error(InputError, tmp_path)


def test_missing_oci_layout(tmp_path: Path) -> None:
    write_layout(tmp_path, [make_image(tmp_path)])
    (tmp_path / "oci-layout").unlink()
    assert "oci-layout: missing" in error(InputError, tmp_path)


def test_bad_oci_layout_version(tmp_path: Path) -> None:
    write_layout(tmp_path, [make_image(tmp_path)])
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    assert "unsupported imageLayoutVersion" in error(InputError, tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    assert "no such directory" in error(InputError, tmp_path / "nope")


def test_malformed_manifest(tmp_path: Path) -> None:
    bad = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
           **put_blob(tmp_path, b'{"schemaVersion": 2, "layers": []}')}
    write_layout(tmp_path, [bad])
    message = error(InputError, tmp_path)
    assert f"reading oci:{tmp_path} manifest {bad['digest'][:19]}" in message
    assert "missing field 'config'" in message


def test_manifest_not_json(tmp_path: Path) -> None:
    bad = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
           **put_blob(tmp_path, b"\x00garbage")}
    write_layout(tmp_path, [bad])
    message = error(InputError, tmp_path)
    assert "not valid JSON" in message and bad["digest"][:19] in message


def test_missing_manifest_blob(tmp_path: Path) -> None:
    a = make_image(tmp_path)
    write_layout(tmp_path, [a])
    blob_path(tmp_path, a["digest"]).unlink()
    message = error(BlobError, tmp_path)
    assert message == f"reading oci:{tmp_path} blob {a['digest'][:19]}: missing"


def test_manifest_digest_mismatch(tmp_path: Path) -> None:
    a = make_image(tmp_path)
    write_layout(tmp_path, [a])
    path = blob_path(tmp_path, a["digest"])
    path.write_bytes(path.read_bytes().replace(b"\n  ", b"\n \t", 1))  # same size, valid JSON
    message = error(BlobError, tmp_path)
    assert "digest mismatch" in message and a["digest"][:19] in message


def test_config_digest_mismatch_same_size(tmp_path: Path) -> None:
    a = make_image(tmp_path)
    write_layout(tmp_path, [a])
    config = json.loads(blob_path(tmp_path, a["digest"]).read_bytes())["config"]
    path = blob_path(tmp_path, config["digest"])
    path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
    message = error(BlobError, tmp_path)
    assert "digest mismatch" in message and config["digest"][:19] in message


def test_size_mismatch(tmp_path: Path) -> None:
    a = make_image(tmp_path)
    write_layout(tmp_path, [{**a, "size": a["size"] + 5}])
    message = error(BlobError, tmp_path)
    assert f"blob {a['digest'][:19]}" in message
    assert f"descriptor says {a['size'] + 5}" in message


def test_size_mismatch_on_layer(tmp_path: Path) -> None:
    blob, diff_id = tar_gz({"f": b"1"})
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put_blob(tmp_path, blob)}
    layer["size"] -= 1
    config = put_blob(tmp_path, json.dumps({"rootfs": {"type": "layers", "diff_ids": [diff_id]},
                                            "os": "linux", "architecture": "amd64"}).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [layer]}
    write_layout(tmp_path, [{"mediaType": manifest["mediaType"],
                             **put_blob(tmp_path, json.dumps(manifest).encode())}])
    (lay,) = resolve(tmp_path).images[0].layers  # resolve opens no layer
    with pytest.raises(BlobError, match="descriptor says"):
        with lay.open_compressed() as stream:
            stream.read()


def test_oversized_descriptor_is_refused_before_reading(tmp_path: Path) -> None:
    a = make_image(tmp_path)
    write_layout(tmp_path, [{**a, "size": 1 << 40}])
    message = error(InputError, tmp_path)
    assert "exceeds" in message and a["digest"][:19] in message


def test_diff_ids_count_mismatch(tmp_path: Path) -> None:
    a = make_image(tmp_path, [{"a": b"1"}], diff_ids=["sha256:" + "1" * 64] * 2)
    write_layout(tmp_path, [a])
    message = error(InputError, tmp_path)
    assert "has 2 diff_ids but manifest has 1 layers" in message
    assert f"oci:{tmp_path}" in message


# -- interoperability ---------------------------------------------------------------------------

@pytest.mark.integration
def test_reads_layout_written_by_skopeo(tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo") or ""
    if not skopeo:
        pytest.skip("skopeo is not installed")
    ours = tmp_path / "ours"
    sink = LayoutSink(LayoutRef(str(ours), "v1"))
    manifest = write_with_sink(sink, {"etc/os-release": b"ID=test\n", "bin/tool": b"#!x"})
    sink.commit(manifest)
    copy = tmp_path / "copy"
    subprocess.run([skopeo, "--insecure-policy", "copy", "-q", f"oci:{ours}:v1",
                    f"oci:{copy}:v2"], check=True, capture_output=True)
    theirs = resolve(copy, ":v2")
    original = resolve(ours, ":v1")
    (image,) = theirs.images
    assert image.config.diff_ids == original.images[0].config.diff_ids
    assert theirs.descriptor.annotations == {REF_NAME: "v2"}
    for layer, orig in zip(image.layers, original.images[0].layers):
        with layer.open_compressed() as stream, orig.open_compressed() as expected:
            assert stream.read() == expected.read()
