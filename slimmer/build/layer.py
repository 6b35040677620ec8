"""Build one output layer: stream input blobs -> verify -> decompress -> tar filter/merge ->
compress -> hash -> sink, following a plan entry. Nothing is extracted or held whole in memory."""

from __future__ import annotations

from typing import Callable, Sequence

from slimmer.build.cudarewrite import copy_data
from slimmer.codec.compression import LayerWriter
from slimmer.codec.layerstream import open_layer_tar
from slimmer.codec.result import LayerResult
from slimmer.codec.tarread import Entry, TarReader, Write
from slimmer.codec.tarwrite import END_OF_ARCHIVE, rewrite_header, whiteout_header
from slimmer.errors import LayerError
from slimmer.oci.digest import short
from slimmer.oci.image import Layer, Sink
from slimmer.plan.model import (
    COPY,
    FETCH,
    LINK,
    PASSTHROUGH,
    RECOMPRESS,
    RELINK,
    RENAME,
    REWRITE,
    Op,
    OutputLayer,
    PreambleEntry,
    Rewrite,
    Whiteout,
)

Progress = Callable[[int], None]


def _what(layer: Layer) -> str:
    return f"reading layer {short(layer.descriptor.digest)}"


def build_layer(out: OutputLayer, layers: Sequence[Layer], sink: Sink, *,
                level: int | None = None, threads: int = 0,
                progress: Progress | None = None, scanned: bool = False) -> LayerResult:
    """Produce the blob for one output layer in ``sink`` and return what it is.

    ``scanned``: the input layers' diff_ids were verified by their scan in this run; the blob
    digests, checked again on every read, then vouch for the tar bytes, so they are not hashed
    a second time."""
    if out.mode == PASSTHROUGH:
        layer = layers[out.inputs[0]]
        sink.copy_blob(layer.descriptor, layer.open_compressed, layer.origin)
        if progress:
            progress(layer.descriptor.size)
        return LayerResult(layer.descriptor.digest, layer.descriptor.size, layer.diff_id,
                           out.input_tar_size or 0, out.compression)
    writer = sink.blob_writer(verified=True)  # LayerWriter hashes every byte it writes
    lw: LayerWriter | None = None
    try:
        recompress = out.mode == RECOMPRESS
        # A recompressed tar is the input tar, whose diff_id the reader already verifies.
        lw = LayerWriter(writer, out.compression, level, threads,
                         diff_id=layers[out.inputs[0]].diff_id if recompress else None)
        if recompress:
            _recompress(layers[out.inputs[0]], lw, progress, check=not scanned)
        else:
            _rebuild(out, layers, lw, progress, check=not scanned)
        result = lw.close()
        writer.commit(result.digest, result.size)
        return result
    except BaseException:
        if lw is not None:
            lw.discard()
        writer.abort()
        raise


def _recompress(layer: Layer, lw: LayerWriter, progress: Progress | None, check: bool) -> None:
    with open_layer_tar(layer, _what(layer), check_diff_id=check,
                        hash_in_caller=True) as (tar, _, _):
        while True:
            chunk = tar.read(1 << 20)
            if not chunk:
                break
            lw.write(chunk)
            if progress:
                progress(len(chunk))


def write_items(items: Sequence[PreambleEntry], write: Write) -> None:
    """Header-only entries: directory headers copied from the scan, and whiteouts."""
    for item in items:
        write(whiteout_header(item.path, item.opaque) if isinstance(item, Whiteout) else item)


def write_entry(op: Op, entry: Entry, reader: TarReader, write: Write,
                layers: Sequence[Layer]) -> None:
    """Write one input entry as ``op`` says (its ``prefix`` headers first)."""
    for header in op.prefix:
        write(header)
    action = op.action
    if action == COPY:
        write(rewrite_header(entry) if entry.has_global else entry.header)
        reader.copy_data(write)
    elif action == REWRITE:
        write(rewrite_header(entry) if entry.has_global else entry.header)
        copy_data(reader, op.rewrite, write, f"{reader.what}: {entry.path}")
    elif action == RENAME:
        write(rewrite_header(entry, path=op.path))
        copy_data(reader, op.rewrite, write, f"{reader.what}: {entry.path}")
    elif action == RELINK:
        write(rewrite_header(entry, linkname=op.linkname))
    elif action == LINK:                        # its data is skipped with the entry
        write(rewrite_header(entry, linkname=op.linkname, typeflag=b"1"))
    elif action == FETCH:
        assert op.src is not None and op.path is not None
        _fetch(layers[op.src[0]], op.src[1], op.path, write, op.rewrite)


def write_trailer(out: OutputLayer, lw: LayerWriter) -> None:
    """The end of a rebuilt layer: a streaming layer's trailer in a frame of its own, then
    the end-of-archive marker."""
    if out.streaming:
        lw.end_frame()
        write_items(out.trailer, lw.write)
    lw.write(END_OF_ARCHIVE)


def _rebuild(out: OutputLayer, layers: Sequence[Layer], lw: LayerWriter,
             progress: Progress | None, check: bool) -> None:
    write = lw.write
    write_items(out.preamble, write)
    for j in out.inputs:
        layer = layers[j]
        what = _what(layer)
        ops = out.ops[j]
        with open_layer_tar(layer, what, check_diff_id=check) as (tar, _, _):
            reader = TarReader(tar, what)
            count = 0
            for o, entry in enumerate(reader):
                count += 1
                op = ops.get(o)
                if op is None:
                    raise LayerError(f"{what}: layer has more entries than when it was scanned")
                write_entry(op, entry, reader, write, layers)
                if progress:
                    progress(entry.size + 512)
            if count != len(ops):
                raise LayerError(f"{what}: layer has fewer entries than when it was scanned")
            while tar.read(1 << 20):
                pass
    write_trailer(out, lw)


def _fetch(layer: Layer, ordinal: int, path: str, write: Write,
           rewrite: Rewrite | None = None) -> None:
    """Emit entry ``ordinal`` of another input layer under ``path`` (a hardlink made a file).

    Only the part of the layer up to that entry is read, so its diff_id is not checked here;
    the layer's own scan checked it."""
    what = _what(layer)
    with open_layer_tar(layer, what, check_diff_id=False) as (tar, _, _):
        reader = TarReader(tar, what)
        for o, entry in enumerate(reader):
            if o == ordinal:
                write(rewrite_header(entry, path=path))
                copy_data(reader, rewrite, write, f"{what}: {entry.path}")
                return
        raise LayerError(f"{what}: entry {ordinal} vanished since the scan")
