"""The byte work is done in big pieces (README "Performance"): the tar reader hashes a buffer
at a time, LayerWriter gathers small writes, a plain member is parsed in one go. These check
that the pieces change nothing a caller sees: hashes, compressed bytes, entries."""

from __future__ import annotations

import hashlib
import io
import os
import random

import pytest

from slimmer.codec import tarread
from slimmer.codec.compression import DIRECT, FEED, LayerWriter, open_decompressed
from slimmer.codec.tarread import TarReader
from slimmer.oci.media import GZIP, NONE, ZSTD

from support.memimage import make_tar

_FIELDS = ("header", "path", "kind", "typeflag", "size", "linkname", "mode", "uid", "gid",
           "pax", "offset", "target", "has_global")


class _Writer:
    def __init__(self) -> None:
        self.buf = io.BytesIO()

    def write(self, data: bytes | memoryview) -> None:
        self.buf.write(data)


def _tar(n: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    specs: list[tuple] = [("dir", "d")]
    for i in range(n):
        size = rnd.choice([0, 1, 511, 512, 513, 4000, 70_000, 300_000])
        specs.append(("file", f"d/f{i}", rnd.randbytes(size)))
    specs += [("symlink", "d/l", "f0"), ("hardlink", "d/h", "d/f1"), ("whiteout", "d/gone"),
              ("file", "d/" + "n" * 120, b"long name"), ("file", "./d/./odd//name", b"x")]
    return make_tar(specs)


@pytest.mark.parametrize("chunk", [100, 512, 4096, 1 << 20])
def test_hash_at_every_entry_is_the_hash_of_the_prefix(chunk: int) -> None:
    data = _tar(60, 1)

    class Chunked(io.BytesIO):
        def read(self, n: int = -1) -> bytes:   # a stream that hands over small pieces
            return super().read(min(n, chunk) if n and n > 0 else chunk)

    reader = TarReader(Chunked(data), "t", hashing=True)
    checked = 0
    for e in reader:
        state = reader.hash_at(e.offset)
        if state is not None:
            assert state.hexdigest() == hashlib.sha256(data[:e.offset]).hexdigest(), e.path
            checked += 1
    assert checked > 30          # most entries start inside the buffer their header is in
    assert reader.diff_id() == "sha256:" + hashlib.sha256(data).hexdigest()


def test_plain_members_read_as_the_long_way_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tar(40, 2)
    fast = list(TarReader(io.BytesIO(data), "t"))
    monkeypatch.setattr(tarread, "plain_fields", lambda block: None)
    slow = list(TarReader(io.BytesIO(data), "t"))
    assert len(fast) == len(slow) > 40
    for a, b in zip(fast, slow):
        assert [getattr(a, f) for f in _FIELDS] == [getattr(b, f) for f in _FIELDS]


def _compress(kind: str, pieces: list[bytes], start_hash_at: int | None = None,
              ) -> tuple[bytes, str, int]:
    out = _Writer()
    lw = LayerWriter(out, kind, threads=1, diff_id="sha256:" + "0" * 64
                     if start_hash_at is not None else None)
    done = b""
    for i, piece in enumerate(pieces):
        if i == start_hash_at:
            lw.start_hashing(hashlib.sha256(done))
        lw.write(piece)
        done += piece
    result = lw.close()
    return out.buf.getvalue(), result.diff_id, result.tar_size


def _cuts(data: bytes, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        n = rnd.choice([1, 100, 512, 5000, DIRECT - 1, DIRECT, DIRECT + 3, FEED, FEED + 9])
        out.append(data[pos:pos + n])
        pos += n
    return out


@pytest.mark.parametrize("kind", [ZSTD, GZIP, NONE])
def test_layer_bytes_and_diff_id_do_not_depend_on_how_writes_are_cut(kind: str) -> None:
    data = os.urandom(600_000) + bytes(3 * FEED) + os.urandom(FEED + 1234)
    whole = _compress(kind, [data])
    for seed in range(3):
        assert _compress(kind, _cuts(data, seed)) == whole
    blob, diff_id, size = whole
    tar, _ = open_decompressed(io.BytesIO(blob), "t")
    assert b"".join(iter(lambda: tar.read(1 << 20), b"")) == data
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(data)


@pytest.mark.parametrize("kind", [ZSTD, GZIP])
def test_start_hashing_with_writes_still_gathered(kind: str) -> None:
    data = os.urandom(3 * FEED + 77)
    pieces = _cuts(data, 7)
    for at in (1, len(pieces) // 2, len(pieces) - 1):
        blob, diff_id, _ = _compress(kind, pieces, start_hash_at=at)
        assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        assert blob == _compress(kind, [data])[0]


@pytest.mark.parametrize("chunk", [100, 512, 4096, 70_001, 1 << 20])
@pytest.mark.parametrize("seed", [3, 4])
def test_the_tee_passes_what_an_entry_by_entry_copy_writes(chunk: int, seed: int) -> None:
    """A caller that keeps some entries and drops others, switching between the tee and its
    own writes as the speculative build does, gets the bytes of copying each kept entry
    (header, data, padding), also when reading an entry's head refilled the buffer and when
    a header has extension records; the end-of-archive marker is never passed."""
    rnd = random.Random(seed)
    data = _tar(80, seed)
    keeps = [rnd.random() < 0.7 for _ in range(200)]

    class Chunked(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            return super().read(min(n, chunk) if n and n > 0 else chunk)

    expected = _Writer()
    for i, e in enumerate(plain := TarReader(io.BytesIO(data), "t")):
        if keeps[i]:
            expected.write(e.header)
            plain.copy_data(expected.write)
    out = _Writer()
    reader = TarReader(Chunked(data), "t")
    kept = 0
    for i, e in enumerate(reader):
        if e.size and rnd.random() < 0.5:
            reader.head(min(e.size, 300_000))     # may refill past the header
        keep = keeps[i]
        if not keep:
            reader.untee()
        elif not reader.teeing:
            out.write(e.header)
            reader.tee(out.write)
        kept += keep
    reader.untee()
    assert kept > 20 and out.buf.getvalue() == expected.buf.getvalue()
    assert len(out.buf.getvalue()) <= reader.end_offset
