"""Bad input gives a one-line error naming what was read, exit status 1, and leaves the
destination exactly as it was (checked against a destination layout that already has a tag)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from slimmer.cli import main

from support.layoututil import snapshot
from support.memimage import make_tar

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[no-redef]

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
ZS = "application/vnd.oci.image.layer.v1.tar+zstd"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put(layout: Path, data: bytes) -> dict[str, Any]:
    path = layout / "blobs" / "sha256" / sha(data)[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": sha(data), "size": len(data)}


def write_image(layout: Path, tars: list[bytes], *, tag: str = "v1",
                blob_of: Callable[[int, bytes], bytes] | None = None,
                media_type: str = GZ, edit_config: Callable[[dict], None] | None = None,
                edit_manifest: Callable[[dict], None] | None = None,
                manifest_bytes: bytes | None = None) -> None:
    layers = []
    for i, t in enumerate(tars):
        blob = blob_of(i, t) if blob_of else gzip.compress(t, mtime=0)
        layers.append({"mediaType": media_type, **put(layout, blob)})
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]}}
    if edit_config:
        edit_config(config)
    cfg = put(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                "layers": layers}
    if edit_manifest:
        edit_manifest(manifest)
    raw = manifest_bytes if manifest_bytes is not None else json.dumps(manifest).encode()
    man = put(layout, raw)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **man,
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}))


GOOD = [make_tar([("dir", "etc"), ("file", "etc/a", b"a" * 3000)]),
        make_tar([("file", "etc/b", b"b")])]


@pytest.fixture()
def dest(tmp_path: Path) -> Path:
    """An existing destination layout with another tag in it."""
    d = tmp_path / "dest"
    write_image(d, GOOD, tag="other")
    return d


def run_cli(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def check_fails(src: str, dest: Path, match: str, *extra: str) -> None:
    before = snapshot(dest)
    result = run_cli(["push", src, f"oci:{dest}:new", *extra])
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("slim: error: "), result.output
    assert match in lines[0], lines[0]
    assert snapshot(dest) == before


def test_good_image_works(tmp_path: Path, dest: Path) -> None:
    write_image(tmp_path / "src", GOOD)
    result = run_cli(["push", f"oci:{tmp_path / 'src'}:v1", f"oci:{dest}:new"])
    assert result.exit_code == 0, result.output
    tags = [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.loads((dest / "index.json").read_text())["manifests"]]
    assert tags == ["other", "new"]


def test_corrupt_blob(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD)
    blob = next(p for p in (src / "blobs/sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x55
    blob.write_bytes(bytes(data))
    check_fails(f"oci:{src}:v1", dest, "digest mismatch")


def test_descriptor_size_mismatch(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, edit_manifest=lambda m: m["layers"][0].update(
        size=m["layers"][0]["size"] + 10))
    check_fails(f"oci:{src}:v1", dest, "size")


def test_diff_id_mismatch(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, edit_config=lambda c: c["rootfs"]["diff_ids"].__setitem__(
        1, "sha256:" + "0" * 64))
    check_fails(f"oci:{src}:v1", dest, "diff_id", "--merge", "all")


def test_diff_id_mismatch_on_recompress_only(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, edit_config=lambda c: c["rootfs"]["diff_ids"].__setitem__(
        1, "sha256:" + "0" * 64))
    check_fails(f"oci:{src}:v1", dest, "diff_id", "--merge", "none", "--profile", "none")


def test_truncated_gzip(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, blob_of=lambda i, t: gzip.compress(t, mtime=0)[:-30])
    check_fails(f"oci:{src}:v1", dest, "truncated")


def test_truncated_zstd(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, blob_of=lambda i, t: zstd.compress(t)[:-8], media_type=ZS)
    check_fails(f"oci:{src}:v1", dest, "truncated")


def test_entry_escaping_root(tmp_path: Path, dest: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(tarfile.TarInfo("../../etc/evil"), io.BytesIO(b""))
    src = tmp_path / "src"
    write_image(src, [GOOD[0], buf.getvalue()])
    check_fails(f"oci:{src}:v1", dest, "escapes the root")


def test_hardlink_to_missing_target(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, [GOOD[0], make_tar([("hardlink", "etc/link", "etc/nothing")])])
    check_fails(f"oci:{src}:v1", dest, "missing")


def test_missing_blob(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD)
    man = json.loads((src / "index.json").read_text())["manifests"][0]
    manifest = json.loads((src / "blobs/sha256" / man["digest"][7:]).read_text())
    (src / "blobs/sha256" / manifest["layers"][1]["digest"][7:]).unlink()
    check_fails(f"oci:{src}:v1", dest, "missing")


def test_malformed_index_json(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD)
    (src / "index.json").write_text("{not json")
    check_fails(f"oci:{src}:v1", dest, "index.json")


def test_malformed_manifest(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, manifest_bytes=b'{"schemaVersion": 2, "layers": "nope"}')
    check_fails(f"oci:{src}:v1", dest, "manifest")


def test_unknown_media_type(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, media_type="application/x-unknown")
    check_fails(f"oci:{src}:v1", dest, "media type")


def test_unknown_tag(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD)
    check_fails(f"oci:{src}:nope", dest, "nope")


def test_unknown_profile(tmp_path: Path, dest: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD)
    check_fails(f"oci:{src}:v1", dest, "bogus", "--profile", "caches,bogus")


def test_new_destination_not_created_on_failure(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD, blob_of=lambda i, t: gzip.compress(t, mtime=0)[:-30])
    result = run_cli(["push", f"oci:{src}:v1", f"oci:{tmp_path / 'fresh'}:v1"])
    assert result.exit_code == 1
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_input_is_never_touched(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src, GOOD)
    before = snapshot(src)
    assert run_cli(["push", f"oci:{src}:v1", f"oci:{src}:slim"]).exit_code == 0
    after = snapshot(src)
    # writing into the same layout adds blobs and a tag, but never changes existing files
    assert all(after[p] == v for p, v in before.items() if p != "./index.json")
