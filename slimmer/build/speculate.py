"""Building a layer in the pass that scans it, before the plan exists, and keeping the result
when the plan agrees: one decode per layer on the default path.

While a layer is scanned, a ``Speculation`` writes its output with what the layer itself tells:
an entry a strip rule selects (and no keep rule saves) goes, the rest stays, directories a rule
selects, and the layer's own whiteouts and opaque markers inside them, wait for the first
entry below them that stays (the stream order of ``plan.stream``). Until the first entry
goes, the output is the input tar itself. Runs of entries that stay are not copied one by
one: the scan's reader tees its input into the output (``TarReader.tee``) until an entry
goes. When the whole stack is planned, the speculation is taken if the plan recompresses the
layer and nothing was changed, or if the plan rebuilds it and its body, item by item
(``plan.stream.body_trace``), is what was written; the plan's trailer then completes the
blob. Otherwise (a match that the image needs, a path a later layer strips, a hard link
whose data went, ...) it is thrown away and the layer is built in a second pass as before.
The bytes are the same either way: the plan decides, the speculation only saves a pass.
"""

from __future__ import annotations

import threading
from enum import Enum
from typing import NamedTuple, Sequence

from slimmer.build.layer import write_entry, write_trailer
from slimmer.codec.compression import LayerWriter
from slimmer.codec.result import LayerResult
from slimmer.codec.tarread import Entry, TarReader
from slimmer.fs.index import Rec
from slimmer.fs.overlay import ancestors
from slimmer.oci.image import Flushable, Layer, Sink
from slimmer.oci.layer import DIR, HARDLINK, META, OPAQUE, WHITEOUT
from slimmer.oci.media import Compression
from slimmer.plan.emit import marker_dir
from slimmer.plan.model import COPY_OP, REBUILD, RECOMPRESS, OutputLayer
from slimmer.plan.stream import TraceItem, body_trace, entry_item, header_item
from slimmer.profiles import Matcher


class _State(Enum):
    RAW = "raw"              # everything written so far is the input tar itself
    REBUILD = "rebuild"      # an entry went: writing with local decisions
    FAILED = "failed"        # the layer cannot be written without the plan


class _Waiting(NamedTuple):
    """An entry held back until an entry below its directory stays: the header of a
    directory a rule selects, or a whiteout or opaque marker inside such a directory (the
    plan drops those when the directory goes whole)."""

    dir: str              # the directory it waits on
    header: bytes
    offset: int           # where it starts in the input
    item: TraceItem       # what writing it adds to the trace


class Speculation:
    """The output of one input layer, written during its scan (a ``fs.scan.ScanObserver``)."""

    def __init__(self, layer: Layer, sink: Sink, compression: Compression,
                 level: int | None, threads: int, matcher: Matcher | None,
                 cuda: bool = False) -> None:
        self.layer = layer
        self._cuda = cuda                    # --cuda-arch: fat binaries are the plan's
        self.compression = compression
        self.matcher = matcher               # whose matches it leaves in Rec.matched
        self._writer = sink.blob_writer(verified=True)
        self._lw = LayerWriter(self._writer, compression, level, threads, diff_id=layer.diff_id)
        self._state = _State.RAW
        self._pending: list[_Waiting] = []                   # in stream order
        self._pending_paths: dict[str, int] = {}             # how often each dir is waited on
        self._pending_hash: object = None                    # hash at the first pending entry
        self._trace: list[TraceItem] = []
        self._seen: set[str] = set()
        self._gone: set[str] = set()
        self._files: dict[str, Rec] = {}     # data entries of this layer, for hard links
        self._last: Rec | None = None
        self._raw_only = False
        self._recompressed: LayerResult | None = None
        self._taken: tuple[OutputLayer, LayerResult] | None = None
        self.why: str | None = None          # why it failed, for the report and tests
        self._reader: TarReader | None = None  # the scan's, while it tees into the output
        self._lock = threading.Lock()

    # -- during the scan ----------------------------------------------------------------------

    def entry(self, ordinal: int, entry: Entry, rec: Rec, reader: TarReader) -> None:
        if self._state is _State.FAILED or self._fatbins():
            return
        self._reader = reader
        self._last = rec
        if rec.path in self._seen:
            # Which copy of a path stays is the plan's to say: fine for a copy of the input,
            # not for a rebuild.
            self._raw_only = True
            if self._state is _State.REBUILD:
                self._fail("a path appears twice in the layer")
                return
        self._seen.add(rec.path)
        kind = rec.kind
        if kind == META:
            reader.untee()
            self._deviate(entry, reader)
            return
        if kind == DIR and rec.path and self._selected(rec):
            reader.untee()
            self._wait(rec.path, entry, header_item(entry.header), reader)
            return
        if kind in (WHITEOUT, OPAQUE) and self._pending and not entry.has_global:
            where = marker_dir(rec.target, kind == OPAQUE)
            if where in self._pending_paths:
                reader.untee()
                self._wait(where, entry, entry_item(ordinal, COPY_OP), reader)
                return
        if kind not in (DIR, WHITEOUT, OPAQUE) and self._selected(rec):
            reader.untee()
            self._deviate(entry, reader)
            self._gone.add(rec.path)
            return
        if kind == HARDLINK and rec.linkname in self._gone:
            self._fail("a hard link stays whose file goes")   # the plan moves the data to it
            return
        if kind != DIR:
            self._files[rec.path] = rec
        self._keep(ordinal, entry, rec, reader)

    def _wait(self, where: str, entry: Entry, item: TraceItem, reader: TarReader) -> None:
        """Hold ``entry`` back until an entry below directory ``where`` stays."""
        if not self._pending and self._state is _State.RAW:
            self._pending_hash = reader.hash_at(entry.offset)
        self._pending.append(_Waiting(where, entry.header, entry.offset, item))
        self._pending_paths[where] = self._pending_paths.get(where, 0) + 1

    def _selected(self, rec: Rec) -> bool:
        """Whether a strip rule selects the entry and no keep rule saves it (a hard link is
        judged by the file it links to, as the plan does)."""
        if self.matcher is None:
            return False
        if rec.kind == HARDLINK:
            data = self._files.get(rec.linkname, rec)
            m = self.matcher.match("/" + rec.path, rec.kind, data.size, data.content)
        else:
            m = self.matcher.match("/" + rec.path, rec.kind, rec.size, rec.content)
            rec.matched = m
        return m is not None and m.kept_by is None

    def _keep(self, ordinal: int, entry: Entry, rec: Rec, reader: TarReader) -> None:
        traced = entry_item(ordinal, COPY_OP)
        if reader.teeing:
            if not entry.has_global:
                self._trace.append(traced)
                return              # the reader passes it on once the scan moves on
            reader.untee()
        above = self._pending_above(rec.path) if self._pending else []
        if len(above) != len(self._pending) or entry.has_global:
            self._deviate(entry, reader)        # a selected directory has no entry below here
        for waiting in above:
            self._lw.write(waiting.header)
            self._trace.append(waiting.item)
            self._pending.remove(waiting)
            self._pending_paths[waiting.dir] -= 1
            if not self._pending_paths[waiting.dir]:
                del self._pending_paths[waiting.dir]
        self._pending_hash = None
        self._trace.append(traced)
        if entry.has_global:
            write_entry(COPY_OP, entry, reader, self._lw.write, (self.layer,))
        else:
            self._lw.write(entry.header)
            reader.tee(self._lw.write)          # this entry's data and what stays after it

    def _pending_above(self, path: str) -> list[_Waiting]:
        """What waits on the directories above ``path``, in stream order: found by its
        ancestors, since a stripped tree (``__pycache__`` and the like) leaves thousands
        pending."""
        found = {a for a in ancestors(path) if a in self._pending_paths}
        return [w for w in self._pending if w.dir in found] if found else []

    def _deviate(self, entry: Entry, reader: TarReader) -> None:
        """From here on the output is not the input tar: hash it ourselves, continuing from
        the hash of the input as far as it was copied."""
        if self._state is not _State.RAW:
            return
        if self._raw_only:
            self._fail("a path appears twice in the layer")
            return
        if self._pending:
            state, offset = self._pending_hash, self._pending[0].offset
        else:
            state, offset = reader.hash_at(entry.offset), entry.offset
        if state is None or self._lw.tar_size != offset:
            self._fail("the input hash moved past the first changed entry")
            return
        self._lw.start_hashing(state)  # type: ignore[arg-type]
        reader.stop_hashing()           # the output's own hash takes over; see fs.scan
        self._state = _State.REBUILD

    def _fail(self, why: str) -> None:
        self.why = why
        if self._reader is not None:
            self._reader.untee()
        self._state = _State.FAILED
        self._lw.discard()
        self._writer.abort()

    def _fatbins(self) -> bool:
        """Fail at the first file (seen whole by the scan) with fat binaries that
        ``--cuda-arch`` may rewrite: only the plan knows their new content."""
        cuda = self._last.cuda if self._cuda and self._last is not None else None
        if cuda is not None and cuda.containers and cuda.problem is None:
            self._fail("a file holds CUDA fat binaries (--cuda-arch rewrites them)")
            return True
        return False

    def end(self, reader: TarReader) -> None:
        """After the last entry: a raw copy gets the input's tail and becomes the recompressed
        layer; a rebuild closes its body frame and waits for the plan's trailer."""
        if self._state is not _State.FAILED and self._fatbins():
            return
        reader.untee()                  # everything up to the end-of-archive marker
        if reader.synthesized_padding:
            self._fail("the input lacks the last member's padding")
        elif self._state is _State.RAW and reader.tail is None:
            self._fail("more than 1 MiB follows the end-of-archive marker")
        if self._state is _State.FAILED:
            return
        if self._state is _State.RAW:
            assert reader.tail is not None
            for waiting in self._pending:        # what still waits, in place
                self._lw.write(waiting.header)
            self._lw.write(reader.tail)
            self._recompressed = self._lw.close()
        else:
            self._lw.end_frame()
        if isinstance(self._writer, Flushable):
            self._lw.drain()            # the output thread is done with the writer: flush it
            self._writer.flush()

    # -- after the plan -----------------------------------------------------------------------

    def take(self, out: OutputLayer, recs: Sequence[Sequence[Rec]]) -> LayerResult | None:
        """The finished layer if the plan's ``out`` is what was written, else None."""
        with self._lock:
            if self._taken is not None:
                same = self._taken[0]
                if same is out or (same.mode == out.mode and same.trailer == out.trailer and
                                   same.compression == out.compression and
                                   (out.mode == RECOMPRESS or
                                    list(body_trace(same, recs)) == list(body_trace(out, recs)))):
                    return self._taken[1]
                return None
            if self._state is _State.FAILED or out.compression != self.compression:
                return None
            result = None
            if out.mode == RECOMPRESS and self._recompressed is not None:
                result = self._recompressed
            elif out.mode == REBUILD and out.streaming and self._state is _State.REBUILD \
                    and list(body_trace(out, recs)) == self._trace:
                write_trailer(out, self._lw)
                result = self._lw.close()
            if result is None:
                return None
            self._writer.commit(result.digest, result.size)
            self._taken = (out, result)
            return result

    def discard(self) -> None:
        """Drop what was written unless it was taken; safe to call twice."""
        with self._lock:
            if self._taken is None and self._state is not _State.FAILED:
                self._state = _State.FAILED
                self._lw.discard()
                self._writer.abort()

