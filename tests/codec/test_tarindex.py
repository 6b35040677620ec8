"""The tar member index: headers walked with seeks, members opened as byte ranges, links
followed inside the archive, and every malformed or truncated archive refused with InputError."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from slimmer.codec.tarindex import TarIndex, member_name
from slimmer.errors import BlobError, InputError

from support.archives import write_tar


def test_members_offsets_and_long_names(tmp_path: Path) -> None:
    long = "d/" + "x" * 150 + "/file"
    path = write_tar(tmp_path / "a.tar", [("./manifest.json", b"[]"), ("d/", None),
                                          (long, b"y" * 1000), ("d/link", "->../manifest.json"),
                                          ("empty", b"")])
    index = TarIndex(str(path), "reading a.tar")
    assert sorted(index.members) == sorted(["manifest.json", "d", long, "d/link", "empty"])
    with tarfile.open(path) as tar:        # offsets agree with Python's tarfile
        for info in tar.getmembers():
            if info.isfile():
                assert index.members[member_name(info.name) or ""].offset == info.offset_data
    assert index.read(long, 4096, "x") == b"y" * 1000
    assert index.read("d/link", 4096, "x") == b"[]"       # symlinks followed
    assert index.read("empty", 10, "x") == b""
    with index.open(index.find(long, "x"), "x") as stream:  # a fresh stream every time
        assert stream.read(10) == b"y" * 10
    with pytest.raises(InputError, match="over the 999-byte limit"):
        index.read(long, 999, "x")


@pytest.mark.parametrize("name, fragment", [
    ("../etc/passwd", "escapes the archive"),
    ("/etc/passwd", "escapes the archive"),
    ("missing", "'missing' is not in the archive"),
    ("up", "links to '../../x', which escapes the archive"),
    ("abs", "links to '/etc/passwd', which escapes the archive"),
    ("loop", "too many levels of links"),
    ("d", "not a regular file"),
])
def test_find_refuses_escapes_and_missing_members(tmp_path: Path, name: str,
                                                  fragment: str) -> None:
    path = write_tar(tmp_path / "a.tar", [("d/", None), ("up", "->../../x"),
                                          ("abs", "->/etc/passwd"), ("loop", "->loop")])
    with pytest.raises(InputError, match=fragment):
        TarIndex(str(path), "reading a.tar").find(name, "reading a.tar")


def test_truncated_and_malformed_archives(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", [("big", os.urandom(5000)), ("small", b"s")])
    data = path.read_bytes()
    cases = {
        "truncated in data": (data[:2000], "truncated"),
        "truncated at a member boundary": (data[:512 + 5120], "truncated"),
        "no end marker": (data[:512 + 5120 + 1024], "truncated"),
        "not a tar": (b"PK\x03\x04" + bytes(2000), "does not start with a tar header"),
        "empty": (b"", "empty file"),
        "bad checksum": (data[:512 + 5120] + b"\xff" * 512 + data[512 + 5120 + 512:],
                         "bad tar header checksum"),
    }
    for content, fragment in cases.values():
        broken = tmp_path / "broken.tar"
        broken.write_bytes(content)
        with pytest.raises(InputError, match=fragment):
            TarIndex(str(broken), "reading broken.tar")


def test_archive_changed_after_indexing(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", [("f", b"hello")])
    index = TarIndex(str(path), "reading a.tar")
    member = index.find("f", "x")
    path.write_bytes(path.read_bytes() + bytes(512))
    with pytest.raises(BlobError, match="changed while it was being read"):
        index.open(member, "reading f")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        TarIndex(str(tmp_path / "nope.tar"), "reading nope.tar")
    with pytest.raises(InputError, match="is a directory"):
        TarIndex(str(tmp_path), "reading dir")


def test_member_name() -> None:
    assert member_name("./a//b/") == "a/b"
    assert member_name(".") == ""
    assert member_name("a/../b") == "b"
    assert member_name("../a") is None and member_name("/a") is None
    assert member_name("a/../../b") is None
