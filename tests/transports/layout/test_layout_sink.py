"""Tests for slimmer.sinks.layout: all-or-nothing writes, tag handling, abort and threads."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from slimmer.errors import BlobError, OutputError, UsageError
from slimmer.oci.model import Descriptor
from slimmer.oci.refs import LayoutRef
from slimmer.transports.layout.sink import LayoutSink
from slimmer.transports.layout.source import LayoutSource

from support.layoututil import (
    OCI_MANIFEST,
    REF_NAME,
    blob_path,
    make_image,
    sha256,
    snapshot,
    tagged,
    write_layout,
    write_with_sink,
)


def sink_for(path: Path, tag: str | None = "latest") -> LayoutSink:
    return LayoutSink(LayoutRef(str(path), tag))


def index_entries(path: Path) -> list[dict]:
    return json.loads((path / "index.json").read_bytes())["manifests"]


def tags(path: Path) -> list[str | None]:
    return [(e.get("annotations") or {}).get(REF_NAME) for e in index_entries(path)]


def publish(path: Path, tag: str | None, arch: str = "amd64") -> Descriptor:
    sink = sink_for(path, tag)
    manifest = write_with_sink(sink, arch=arch)
    sink.commit(manifest)
    return manifest


# -- new layouts --------------------------------------------------------------------------------

def test_new_layout_appears_only_at_commit(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    sink = sink_for(dest, "v1")
    manifest = write_with_sink(sink)
    assert not dest.exists()
    assert sink.has_blob(manifest.digest)
    assert [p.name.startswith(".out.tmp-") for p in tmp_path.iterdir()] == [True]
    sink.commit(manifest)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert json.loads((dest / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    raw_index = (dest / "index.json").read_bytes()
    assert raw_index.startswith(b'{"manifests":[{"annotations":{"' + REF_NAME.encode())
    assert json.loads(raw_index) == {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest.digest,
                       "size": manifest.size, "annotations": {REF_NAME: "v1"}}]}
    root = LayoutSource(LayoutRef(str(dest), "v1")).resolve()
    assert root.images[0].manifest.digest == manifest.digest
    assert not [p for p in (dest / "blobs" / "sha256").iterdir() if p.name.startswith(".")]


def test_new_layout_into_empty_dir_and_missing_parents(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    publish(empty, "t")
    assert tags(empty) == ["t"]
    deep = tmp_path / "a" / "b" / "c"
    publish(deep, "t")
    assert tags(deep) == ["t"]


def test_abort_new_layout_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("x")
    before = snapshot(tmp_path)
    for dest in (tmp_path / "out", tmp_path / "x" / "y" / "out"):
        sink = sink_for(dest)
        write_with_sink(sink)
        sink.abort()
        sink.abort()  # idempotent
        assert snapshot(tmp_path) == before


def test_abort_into_empty_dir_keeps_it_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path)
    sink = sink_for(tmp_path / "out")
    write_with_sink(sink)
    sink.abort()
    assert snapshot(tmp_path) == before


def test_untagged_commit_appends_once(tmp_path: Path) -> None:
    first = publish(tmp_path / "out", None)
    again = publish(tmp_path / "out", None)
    assert first == again
    assert tags(tmp_path / "out") == [None]
    publish(tmp_path / "out", None, arch="arm64")
    assert tags(tmp_path / "out") == [None, None]


# -- existing layouts ---------------------------------------------------------------------------

def test_existing_layout_keeps_other_tags(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    a = publish(dest, "a", "amd64")
    b = publish(dest, "b", "arm64")
    assert tags(dest) == ["a", "b"]
    for tag, manifest in (("a", a), ("b", b)):
        root = LayoutSource(LayoutRef(str(dest), tag)).resolve()
        assert root.images[0].manifest.digest == manifest.digest


def test_retag_replaces_only_that_tag(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    extra = {"annotations": {"org.example": "kept"}, "x-unknown": [1, 2]}
    handmade = make_image(dest, arch="ppc64le")
    write_layout(dest, [tagged(handmade, "a"), tagged(handmade, "b"),
                        {**handmade, "annotations": {"other": "untagged"}},
                        tagged(handmade, "c")], **extra)
    before = index_entries(dest)
    new = publish(dest, "b", "arm64")
    after = json.loads((dest / "index.json").read_bytes())
    assert after["annotations"] == extra["annotations"] and after["x-unknown"] == [1, 2]
    entries = after["manifests"]
    assert [entries[0], entries[2], entries[3]] == [before[0], before[2], before[3]]
    assert entries[1]["digest"] == new.digest
    assert entries[1]["annotations"] == {REF_NAME: "b"}
    assert LayoutSource(LayoutRef(str(dest), "a")).resolve().images[0].manifest.digest \
        == handmade["digest"]


def test_abort_existing_layout_is_byte_identical(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    publish(dest, "a")
    before = snapshot(tmp_path)
    sink = sink_for(dest, "a")
    manifest = write_with_sink(sink, {"new": b"content"}, arch="s390x")
    # an existing blob written again must survive the abort
    existing = next(p for p in (dest / "blobs" / "sha256").iterdir())
    data = existing.read_bytes()
    sink.put_manifest(data, OCI_MANIFEST)
    assert sink.has_blob(manifest.digest)
    assert snapshot(tmp_path) != before
    sink.abort()
    assert snapshot(tmp_path) == before


def test_abort_removes_created_blob_dirs(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    write_layout(dest, [])  # a layout without blobs/
    before = snapshot(tmp_path)
    sink = sink_for(dest)
    write_with_sink(sink)
    writer = sink.blob_writer("sha512")
    writer.write(b"pending")
    sink.abort()
    assert snapshot(tmp_path) == before
    with pytest.raises(OutputError):
        writer.commit("sha512:" + "0" * 128, 7)


def test_failed_commit_leaves_destination_as_before(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    publish(dest, "a")
    before = snapshot(tmp_path)
    sink = sink_for(dest, "b")
    write_with_sink(sink, arch="mips")
    with pytest.raises(OutputError, match="not stored before commit"):
        sink.commit(Descriptor(OCI_MANIFEST, "sha256:" + "e" * 64, 10))
    assert snapshot(tmp_path) == before
    with pytest.raises(OutputError):
        sink.commit(Descriptor(OCI_MANIFEST, "sha256:" + "e" * 64, 10))


def test_existing_layout_without_oci_layout_file_gets_one(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    write_layout(dest, [])
    (dest / "oci-layout").unlink()
    publish(dest, "t")
    assert (dest / "oci-layout").exists()


def test_sink_is_used_once(tmp_path: Path) -> None:
    sink = sink_for(tmp_path / "out")
    sink.commit(write_with_sink(sink))
    with pytest.raises(OutputError, match="already committed"):
        sink.blob_writer()
    sink.abort()  # no-op after commit
    assert tags(tmp_path / "out") == ["latest"]


# -- destination checks -------------------------------------------------------------------------

def test_digest_reference_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        LayoutSink(LayoutRef(str(tmp_path), None, "sha256:" + "a" * 64))


def test_non_layout_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="neither empty nor an OCI image layout"):
        sink_for(tmp_path)
    with pytest.raises(OutputError, match="not a directory"):
        sink_for(tmp_path / "file.txt")


def test_malformed_existing_index_is_refused(tmp_path: Path) -> None:
    write_layout(tmp_path, [])
    (tmp_path / "index.json").write_text("[")
    with pytest.raises(OutputError, match="index.json"):
        sink_for(tmp_path)


# -- blobs --------------------------------------------------------------------------------------

def test_blob_commit_with_wrong_digest_or_size(tmp_path: Path) -> None:
    sink = sink_for(tmp_path / "out")
    writer = sink.blob_writer()
    writer.write(b"hello")
    with pytest.raises(OutputError, match="expected sha256:"):
        writer.commit(sha256(b"other"), 5)
    writer.abort()  # safe after a failed commit
    writer = sink.blob_writer()
    writer.write(b"hello")
    with pytest.raises(OutputError):
        writer.commit(sha256(b"hello"), 4)
    assert not sink.has_blob(sha256(b"hello"))
    tmpdir = next(p for p in tmp_path.iterdir())
    assert [p for p in (tmpdir / "blobs" / "sha256").iterdir()] == []
    sink.abort()


def test_blob_commit_of_existing_blob_drops_temp(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    publish(dest, "a")
    sink = sink_for(dest, "b")
    existing = next(p for p in (dest / "blobs" / "sha256").iterdir())
    data = existing.read_bytes()
    writer = sink.blob_writer()
    writer.write(data)
    writer.commit("sha256:" + existing.name, len(data))
    assert sorted(p.name for p in existing.parent.iterdir() if p.name.startswith(".")) == []
    sink.abort()
    assert existing.read_bytes() == data


def test_concurrent_writers(tmp_path: Path) -> None:
    sink = sink_for(tmp_path / "out")
    payloads = [os.urandom(300_000 + i) for i in range(8)] + [b"same" * 1000] * 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(payloads))

    def work(data: bytes) -> None:
        try:
            writer = sink.blob_writer()
            barrier.wait()
            for start in range(0, len(data), 4096):
                writer.write(data[start:start + 4096])
            writer.commit(sha256(data), len(data))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    manifest = write_with_sink(sink)
    sink.commit(manifest)
    dest = tmp_path / "out"
    for data in payloads:
        assert blob_path(dest, sha256(data)).read_bytes() == data
    assert not [p for p in (dest / "blobs" / "sha256").iterdir() if p.name.startswith(".")]


def test_copy_blob_streams_in_chunks_and_skips_existing(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    descriptor = Descriptor("application/octet-stream", sha256(data), len(data))
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            reads.append(-1 if n is None else n)
            return super().read(n)

    sink = sink_for(tmp_path / "out")
    sink.copy_blob(descriptor, lambda: Counting(data))
    assert reads and all(0 < n <= 1 << 20 for n in reads)
    assert sink.has_blob(descriptor.digest)

    def fail() -> BinaryIO:
        raise AssertionError("opener must not be called for a present blob")

    sink.copy_blob(descriptor, fail)
    with pytest.raises(OutputError, match="existing blob"):
        sink.copy_blob(Descriptor(descriptor.media_type, descriptor.digest, 1), fail)
    sink.abort()


def test_copy_blob_source_error_leaves_no_temp(tmp_path: Path) -> None:
    sink = sink_for(tmp_path / "out")
    write_with_sink(sink)

    class Broken(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise BlobError("reading src blob: digest mismatch")
            return super().read(n)

    with pytest.raises(BlobError):
        sink.copy_blob(Descriptor("x", sha256(b"ab" * 10), 20), lambda: Broken(b"ab" * 10))
    tmpdir = next(p for p in tmp_path.iterdir())
    assert not [p for p in (tmpdir / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_put_manifest_stores_exact_bytes(tmp_path: Path) -> None:
    sink = sink_for(tmp_path / "out")
    raw = b'{ "odd" :  "spacing" }'
    descriptor = sink.put_manifest(raw, "application/vnd.example+json")
    assert descriptor == Descriptor("application/vnd.example+json", sha256(raw), len(raw))
    assert sink.put_manifest(raw, "application/vnd.example+json") == descriptor
    sink.commit(descriptor)
    assert blob_path(tmp_path / "out", descriptor.digest).read_bytes() == raw


# -- interoperability ---------------------------------------------------------------------------

@pytest.mark.integration
def test_skopeo_reads_and_copies_what_we_write(tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo") or ""
    if not skopeo:
        pytest.skip("skopeo is not installed")
    dest = tmp_path / "out"
    publish(dest, "other", "arm64")
    manifest = publish(dest, "v1")
    result = subprocess.run([skopeo, "inspect", f"oci:{dest}:v1"], check=True,
                            capture_output=True, text=True)
    info = json.loads(result.stdout)
    assert info["Digest"] == manifest.digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    other = tmp_path / "copy"
    subprocess.run([skopeo, "--insecure-policy", "copy", "-q", f"oci:{dest}:v1",
                    f"oci:{other}:v1"], check=True, capture_output=True)
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{other}:v1"], check=True,
                         capture_output=True).stdout
    assert json.loads(raw)["layers"] == json.loads(blob_path(dest, manifest.digest).read_bytes())[
        "layers"]
