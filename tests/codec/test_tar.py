"""Tar reading and header rewriting: exact copies, PAX/GNU extensions, sparse files, errors."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from slimmer.codec.tarread import TarReader
from slimmer.codec.tarwrite import END_OF_ARCHIVE, make_header, rewrite_header, whiteout_header
from slimmer.errors import LayerError
from slimmer.oci.layer import OPAQUE, WHITEOUT

from support.memimage import make_tar


def copy_all(data: bytes) -> bytes:
    out = io.BytesIO()
    reader = TarReader(io.BytesIO(data), "t")
    for e in reader:
        out.write(e.header)
        reader.copy_data(out.write)
    return out.getvalue()


def entries(data: bytes) -> list:
    return list(TarReader(io.BytesIO(data), "t"))


def test_copy_is_byte_identical_up_to_end_marker() -> None:
    data = make_tar([("dir", "a"), ("file", "a/" + "n" * 150, b"x" * 1000),
                     ("file", "big", os.urandom(3 * 1024 * 1024 + 7)), ("symlink", "l", "a"),
                     ("hardlink", "h", "big")])
    reader = TarReader(io.BytesIO(data), "t")
    out = io.BytesIO()
    for e in reader:
        out.write(e.header)
        reader.copy_data(out.write)
    assert out.getvalue() == data[:reader.end_offset]


def test_watch_sees_the_data_however_it_is_consumed() -> None:
    """A watcher gets each entry's data (not its padding) whether another caller copies it,
    reads part of it, or leaves it to be skipped; the copy is unchanged and the hash too."""
    big = os.urandom(3 * 1024 * 1024 + 7)
    data = make_tar([("file", "copied", big), ("file", "skipped", b"s" * 1500),
                     ("file", "small", b"tiny"), ("file", "unwatched", b"u" * 700)])
    seen: dict[str, bytearray] = {}
    out = io.BytesIO()
    reader = TarReader(io.BytesIO(data), "t", hashing=True)
    for e in reader:
        if e.path != "unwatched":
            seen[e.path] = bytearray()
            reader.watch(seen[e.path].extend)
        if e.path in ("copied", "small"):
            out.write(e.header)
            reader.copy_data(out.write)
    assert bytes(seen["copied"]) == big and bytes(seen["skipped"]) == b"s" * 1500
    assert bytes(seen["small"]) == b"tiny" and "unwatched" not in seen
    plain = TarReader(io.BytesIO(data), "t", hashing=True)
    for _ in plain:
        pass
    assert reader.diff_id() == plain.diff_id()
    copied = io.BytesIO()
    r2 = TarReader(io.BytesIO(data), "t")
    for e in r2:
        if e.path in ("copied", "small"):
            copied.write(e.header)
            r2.copy_data(copied.write)
    assert out.getvalue() == copied.getvalue()
    with pytest.raises(RuntimeError):
        r3 = TarReader(io.BytesIO(data), "t")
        next(iter(r3))
        r3.copy_data(lambda b: None)
        r3.watch(lambda b: None)


def test_pax_fields_long_names_xattrs_big_ids() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("d/" + "x" * 200)
        ti.uid = 10_000_000
        ti.pax_headers = {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    data = buf.getvalue()
    (e,) = entries(data)
    assert e.path == "d/" + "x" * 200 and e.uid == 10_000_000 and e.size == 3
    assert dict(e.pax)["SCHILY.xattr.security.capability"] == b"\x01\x00\x00\x02"
    assert copy_all(data) + END_OF_ARCHIVE == data[:len(copy_all(data))] + END_OF_ARCHIVE


def test_gnu_longname_and_rewrite_keeps_other_fields() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo("p/" + "y" * 120)
        ti.size = 2
        ti.mode = 0o4755
        ti.uid = 7
        tf.addfile(ti, io.BytesIO(b"hi"))
    reader = TarReader(io.BytesIO(buf.getvalue()), "t")
    out = io.BytesIO()
    for e in reader:
        assert e.path == "p/" + "y" * 120
        out.write(rewrite_header(e, path="q/" + "z" * 130))
        reader.copy_data(out.write)
    out.write(END_OF_ARCHIVE)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        (m,) = tf.getmembers()
        assert m.name == "q/" + "z" * 130 and m.mode == 0o4755 and m.uid == 7
        assert tf.extractfile(m).read() == b"hi"


def test_rewrite_hardlink_target_and_type() -> None:
    data = make_tar([("file", "a", b"data"), ("hardlink", "b", "a")])
    e = entries(data)[1]
    hdr = rewrite_header(e, linkname="c/" + "long" * 40)
    with tarfile.open(fileobj=io.BytesIO(hdr + END_OF_ARCHIVE)) as tf:
        (m,) = tf.getmembers()
        assert m.islnk() and m.linkname == "c/" + "long" * 40


def test_whiteouts_are_recognised() -> None:
    data = make_tar([("whiteout", "a/b"), ("opaque", "c"), ("file", "a/.wh..wh.plnk", b"")])
    es = entries(data)
    assert (es[0].kind, es[0].target) == (WHITEOUT, "a/b")
    assert (es[1].kind, es[1].target) == (OPAQUE, "c")
    assert es[2].kind == "meta"
    hdr = whiteout_header("x/y") + whiteout_header("z", opaque=True)
    with tarfile.open(fileobj=io.BytesIO(hdr + END_OF_ARCHIVE)) as tf:
        assert tf.getnames() == ["x/.wh.y", "z/.wh..wh..opq"]


def test_make_header_long_name_uses_pax() -> None:
    name = "d/" + "w" * 300
    with tarfile.open(fileobj=io.BytesIO(make_header(name) + END_OF_ARCHIVE)) as tf:
        assert tf.getnames() == [name]


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../b", "/etc/passwd"])
def test_escaping_names_are_rejected(name: str) -> None:
    ti = tarfile.TarInfo(name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(ti, io.BytesIO(b""))
    with pytest.raises(LayerError, match="escapes the root|absolute"):
        entries(buf.getvalue())


def test_hardlink_escaping_is_rejected() -> None:
    data = make_tar([("hardlink", "x", "../../etc/shadow")])
    with pytest.raises(LayerError, match="escapes the root"):
        entries(data)


def test_bad_checksum_and_truncation() -> None:
    data = bytearray(make_tar([("file", "a", b"x" * 2000)]))
    data[10] ^= 0xFF
    with pytest.raises(LayerError, match="checksum"):
        entries(bytes(data))
    good = make_tar([("file", "a", b"x" * 2000)])
    with pytest.raises(LayerError, match="truncated"):
        copy_all(good[:1200])


def test_missing_last_padding_is_tolerated() -> None:
    good = make_tar([("file", "a", b"x" * 700)])
    cut = good[:512 + 700]  # member data present, padding and end marker missing
    assert copy_all(cut) == good[:1536]


def test_global_pax_header_applies_to_following_entries() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global"}) as tf:
        ti = tarfile.TarInfo("f")
        tf.addfile(ti, io.BytesIO(b""))
    (e,) = entries(buf.getvalue())
    assert e.has_global and ("comment", b"global") in e.pax


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar missing")
@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files_from_gnu_tar_copy_exactly(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as fh:
        fh.seek(5 * 1024 * 1024)
        fh.write(b"end")
        fh.seek(100)
        fh.write(b"start")
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", f"--format={fmt}", "--sparse", "-cf", str(archive), "-C", str(src),
                    "sparse"], check=True)
    data = archive.read_bytes()
    reader = TarReader(io.BytesIO(data), "t")
    out = io.BytesIO()
    for e in reader:
        assert e.path == "sparse"
        out.write(rewrite_header(e, path="renamed"))
        reader.copy_data(out.write)
    out.write(END_OF_ARCHIVE)
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "b.tar").write_bytes(out.getvalue())
    subprocess.run(["tar", "-xf", str(tmp_path / "b.tar"), "-C", str(dest)], check=True)
    assert (dest / "renamed").read_bytes() == (src / "sparse").read_bytes()
