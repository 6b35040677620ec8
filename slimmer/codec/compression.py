"""Compression detection, streaming decompression and the hashing layer writer.

Compression is detected from magic bytes, never trusted from the media type. Decompression
errors (truncated or corrupt streams) become LayerError naming the layer.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, BinaryIO

from isal import isal_zlib

try:  # Python 3.14+
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd  # type: ignore[no-redef]

from slimmer.codec.memory import release_free_memory
from slimmer.codec.outstream import BlobOutput
from slimmer.codec.result import LayerResult
from slimmer.errors import BlobError, LayerError
from slimmer.oci.image import BlobWriter
from slimmer.oci.media import GZIP, NONE, ZSTD, Compression
from slimmer.options import DEFAULT_LEVEL

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READ_CHUNK = 1 << 20
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # IsalError
ZSTD_WINDOW_LOG = 25


def codec_version(compression: Compression) -> str:
    """The library that writes ``compression``, with its version: a new version may write
    other bytes for the same input, so the layer cache keys on it."""
    import isal
    if compression == ZSTD:
        return f"zstd {zstd.zstd_version} window {ZSTD_WINDOW_LOG} ldm"
    if compression == GZIP:
        return f"isa-l {isal.ISAL_VERSION}"
    return "tar"


def detect_compression(head: bytes) -> Compression:
    """Compression of a blob from its first bytes."""
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if head.startswith(_ZSTD_MAGIC) or (len(head) >= 4 and head[0] & 0xF0 == 0x50
                                        and head[1:4] == b"\x2a\x4d\x18"):
        return ZSTD
    return NONE


class _Decoder:
    """Streaming decompressor over a raw blob: bounded output per read, multi-member/frame
    aware, and strict about truncation (EOF inside a member is an error, not a short read)."""

    def __init__(self, raw: BinaryIO, head: bytes, kind: Compression, what: str) -> None:
        self._raw = raw
        self._kind = kind
        self._what = what
        self._input = head
        self._raw_eof = False
        self._dec = self._new()

    def _new(self) -> Any:
        if self._kind == GZIP:
            return isal_zlib.decompressobj(31)
        return zstd.ZstdDecompressor()

    def _more_input(self) -> bytes:
        if self._raw_eof:
            return b""
        data = self._raw.read(READ_CHUNK)
        if not data:
            self._raw_eof = True
        return data

    def read(self, n: int = -1) -> bytes:
        limit = READ_CHUNK if n is None or n < 0 else n
        try:
            return self._read(limit)
        except (zlib.error, _ISAL_ERROR, zstd.ZstdError, EOFError) as exc:
            raise LayerError(f"{self._what}: corrupt {self._kind} data ({exc})") from exc

    def _read(self, limit: int) -> bytes:
        dec = self._dec
        while True:
            if dec.eof:
                rest = dec.unused_data or self._input
                self._input = b""
                if not rest:
                    rest = self._more_input()
                if not rest:
                    return b""
                if detect_compression(rest[:4]) != self._kind and len(rest) >= 4:
                    if rest.strip(b"\0") or self._more_input().strip(b"\0"):
                        raise LayerError(f"{self._what}: trailing garbage after {self._kind} data")
                    return b""
                dec = self._dec = self._new()
                self._input = rest
            if self._kind == GZIP:
                if not self._input:
                    self._input = self._more_input()
                    if not self._input:
                        raise LayerError(f"{self._what}: {self._kind} stream is truncated")
                out = dec.decompress(self._input, limit)
                self._input = dec.unconsumed_tail
            else:
                if dec.needs_input:
                    data = self._input or self._more_input()
                    self._input = b""
                    if not data:
                        raise LayerError(f"{self._what}: {self._kind} stream is truncated")
                else:
                    data = b""
                out = dec.decompress(data, limit)
            if out:
                return out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


class _Plain:
    """An uncompressed blob, re-fed its already-read first bytes."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._raw.read(READ_CHUNK if n is None or n < 0 else n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


def blame_blob(raw: BinaryIO, exc: LayerError) -> BlobError | LayerError:
    """After a content error, read the rest of the (verifying) raw stream: a corrupt blob is
    reported as the digest mismatch it is, not as the decompression or tar error it caused."""
    try:
        while raw.read(READ_CHUNK):
            pass
    except BlobError as blob_exc:
        return blob_exc
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass
    return exc


def open_decompressed(raw: BinaryIO, what: str) -> tuple[BinaryIO, Compression]:
    """Wrap a compressed blob stream; returns (tar stream, detected compression)."""
    head = raw.read(4)
    kind = detect_compression(head)
    if kind == NONE:
        return _Plain(raw, head), kind  # type: ignore[return-value]
    return _Decoder(raw, head, kind, what), kind  # type: ignore[return-value]


class DiffIdReader:
    """Hashes the uncompressed tar stream and checks it against the config's diff_id at EOF."""

    def __init__(self, stream: BinaryIO, expected: str | None, what: str,
                 hashing: bool = True) -> None:
        self._stream = stream
        self._expected = expected
        self._what = what
        self._hash = hashlib.sha256() if hashing else None
        self.size = 0
        self.diff_id: str | None = None

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            if self._hash is not None:
                self._hash.update(data)
            self.size += len(data)
        elif n != 0 and self.diff_id is None and self._hash is not None:
            self.diff_id = "sha256:" + self._hash.hexdigest()
            if self._expected is not None and self.diff_id != self._expected:
                raise LayerError(f"{self._what}: uncompressed content does not match the config's "
                                 f"diff_id {self._expected[:19]} (it is {self.diff_id[:19]})")
        return data

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass


#: The gzip compressor is fed exactly this many bytes at a time: ISA-L's deflate output
#: depends on how its input is cut, so without a fixed cut the bytes of a gzip layer would
#: depend on how the network or the tar filter happened to hand data over. zstd's output does
#: not depend on the cut: small writes are gathered up to this size, and a write of at least
#: ``DIRECT`` bytes goes to it as it is, without a copy.
FEED = 1 << 20
DIRECT = 256 << 10

#: Every this many bytes fed, ask for freed heap memory to go back (codec.memory).
TRIM_BYTES = 16 << 20


class LayerWriter:
    """Compresses a tar stream into a BlobWriter, hashing tar bytes and blob bytes in one pass.

    ``end_frame`` closes the current zstd frame (gzip member) and frees the compressor; later
    writes start a new one, so a blob can hold a body and a trailer compressed at different
    times (every zstd and gzip decoder reads concatenated frames/members as one stream).
    """

    def __init__(self, out: BlobWriter, compression: Compression, level: int | None = None,
                 threads: int = 0, diff_id: str | None = None,
                 tar_hash: "hashlib._Hash | None" = None, tar_size: int = 0) -> None:
        """``diff_id``: the tar's known, separately verified diff_id (then it is not hashed);
        ``tar_hash``/``tar_size``: the hash state and size of tar bytes already counted (a
        speculative build that copied a prefix before it knew it would need its own hash)."""
        self._out = BlobOutput(out)
        self._diff_id = diff_id
        self._compression = compression
        self._level = DEFAULT_LEVEL[compression] if level is None else level
        self._threads = threads
        self._tar_hash = tar_hash if tar_hash is not None else hashlib.sha256()
        self._buf: bytearray | None = None     # small writes gathered for the compressor
        self._fill = 0                          # bytes of _buf in use
        self._hash_from = 0                     # gathered bytes before this are hashed
        self.tar_size = tar_size
        self.size = 0
        self._cobj: Any = None
        self._fed = 0                           # bytes fed since the last trim

    def _compressor(self) -> Any:
        if self._compression == ZSTD:
            # zstd's multi-threaded mode gives the same bytes for any worker count >= 1, so the
            # output does not depend on --jobs; one worker already overlaps compression with
            # the tar work in this thread.
            # Long-distance matching over a 32 MiB window finds the files repeated across a
            # layer (node_modules, vendored wheels): on a 700 MiB node_modules layer 27% less
            # output at the same speed, with ~60 MiB of compressor memory. Every zstd decoder
            # accepts the window (the zstd CLI's default limit is 128 MiB).
            P = zstd.CompressionParameter
            return zstd.ZstdCompressor(options={
                P.compression_level: self._level, P.nb_workers: max(1, self._threads),
                P.enable_long_distance_matching: 1, P.window_log: ZSTD_WINDOW_LOG})
        if self._compression == GZIP:
            return isal_zlib.compressobj(self._level, isal_zlib.DEFLATED, 31)
        return None

    def _emit(self, data: bytes | memoryview) -> None:
        if data:
            self.size += len(data)
            self._out.write(data)

    def _feed(self, data: bytes | memoryview) -> None:
        self._fed += len(data)
        if self._fed >= TRIM_BYTES:
            self._fed = 0
            release_free_memory()
        if self._compression == NONE:
            self._emit(data)
            return
        if self._cobj is None:
            self._cobj = self._compressor()
        self._emit(self._cobj.compress(data))

    def write(self, data: bytes | memoryview) -> None:
        n = len(data)
        self.tar_size += n
        buf = self._buf
        if buf is None:
            buf = self._buf = bytearray(FEED)
        fill = self._fill
        if self._compression == ZSTD:
            if n >= DIRECT:
                if fill:
                    self._flush_buf()
                self._hash(data)
                self._feed(data)
                return
            if fill + n > FEED:
                self._flush_buf()
                fill = 0
            buf[fill:fill + n] = data
            self._fill = fill + n
            return
        view = memoryview(data)
        pos = 0
        if fill:                        # complete the gathered piece first
            pos = min(n, FEED - fill)
            buf[fill:fill + pos] = view[:pos]
            self._fill = fill = fill + pos
            if fill == FEED:
                self._flush_buf()
        while n - pos >= FEED:
            piece = view[pos:pos + FEED]
            self._hash(piece)
            self._feed(piece)
            pos += FEED
        if pos < n:                     # here the buffer is empty
            buf[:n - pos] = view[pos:]
            self._fill = n - pos

    def _hash(self, data: bytes | memoryview) -> None:
        if self._diff_id is None:
            self._tar_hash.update(data)

    def _flush_buf(self) -> None:
        """Hash and feed what was gathered (the compressors copy their input, so the buffer is
        reused). Gathered bytes are hashed here, a piece at a time, not write by write: each
        hash call of a few KiB let the GIL change hands."""
        assert self._buf is not None
        with memoryview(self._buf) as view:
            if self._fill > self._hash_from:
                self._hash(view[self._hash_from:self._fill])
            self._feed(view[:self._fill])
        self._fill = self._hash_from = 0

    def start_hashing(self, tar_hash: "hashlib._Hash") -> None:
        """From now on hash the tar bytes, continuing from ``tar_hash`` (the hash of the
        ``tar_size`` bytes written so far): for a writer that was copying a tar of known
        diff_id and starts to write something else."""
        self._diff_id = None
        self._tar_hash = tar_hash
        self._hash_from = self._fill     # what is gathered already is in ``tar_hash``

    def drain(self) -> None:
        """Wait until the blob writer has everything emitted so far (it may then be used
        directly, e.g. flushed)."""
        self._out.drain()

    def discard(self) -> None:
        """Throw away what is in flight (the caller aborts the blob writer)."""
        self._out.discard()
        self._cobj = None

    def end_frame(self) -> None:
        """Compress what is pending and close the frame (member); frees the compressor."""
        if self._fill:
            self._flush_buf()
        if self._cobj is not None:
            self._emit(self._cobj.flush())
            self._cobj = None

    def close(self) -> LayerResult:
        """Flush the compressor and return the result; the caller commits the blob."""
        if self._fill or self._cobj is not None or (self.size == 0 and
                                                    self._compression != NONE):
            if self._cobj is None and not self._fill:
                self._cobj = self._compressor()   # an empty tar still gets one frame
            self.end_frame()
        self._out.close()
        return LayerResult("sha256:" + self._out.hash.hexdigest(), self.size,
                           self._diff_id or "sha256:" + self._tar_hash.hexdigest(), self.tar_size,
                           self._compression)
