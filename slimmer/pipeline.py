"""Build one output layer: stream input blobs -> verify -> decompress -> tar filter/merge ->
compress -> hash -> sink, following a plan entry. Nothing is extracted or held whole in memory."""

from __future__ import annotations

from typing import BinaryIO, Callable, Sequence

from .compress import DiffIdReader, LayerResult, LayerWriter, blame_blob, open_decompressed
from .digest import short
from .errors import LayerError
from .image import Layer, Sink
from .plan import COPY, DROP, FETCH, PASSTHROUGH, RECOMPRESS, RELINK, RENAME, OutputLayer
from .tarstream import END_OF_ARCHIVE, TarReader, rewrite_header

Progress = Callable[[int], None]


def _what(layer: Layer) -> str:
    return f"reading layer {short(layer.descriptor.digest)}"


def build_layer(out: OutputLayer, layers: Sequence[Layer], sink: Sink, *,
                level: int | None = None, threads: int = 0,
                progress: Progress | None = None) -> LayerResult:
    """Produce the blob for one output layer in ``sink`` and return what it is."""
    if out.mode == PASSTHROUGH:
        layer = layers[out.inputs[0]]
        sink.copy_blob(layer.descriptor, layer.open_compressed, layer.origin)
        if progress:
            progress(layer.descriptor.size)
        return LayerResult(layer.descriptor.digest, layer.descriptor.size, layer.diff_id,
                           out.input_tar_size or 0, out.compression)
    writer = sink.blob_writer()
    try:
        lw = LayerWriter(writer, out.compression, level, threads)
        if out.mode == RECOMPRESS:
            _recompress(layers[out.inputs[0]], lw, progress)
        else:
            _rebuild(out, layers, lw, progress)
        result = lw.close()
        if out.mode == RECOMPRESS and result.diff_id != layers[out.inputs[0]].diff_id:
            raise LayerError(f"{_what(layers[out.inputs[0]])}: recompressed tar differs")
        writer.commit(result.digest, result.size)
        return result
    except BaseException:
        writer.abort()
        raise


def _recompress(layer: Layer, lw: LayerWriter, progress: Progress | None) -> None:
    raw = layer.open_compressed()
    try:
        stream, _ = open_decompressed(raw, _what(layer))
        tar = DiffIdReader(stream, layer.diff_id, _what(layer))
        while True:
            chunk = tar.read(1 << 20)
            if not chunk:
                break
            lw.write(chunk)
            if progress:
                progress(len(chunk))
    except LayerError as exc:
        raise blame_blob(raw, exc) from exc
    finally:
        raw.close()


def _rebuild(out: OutputLayer, layers: Sequence[Layer], lw: LayerWriter,
             progress: Progress | None) -> None:
    write = lw.write
    for header in out.preamble:
        write(header)
    for j in out.inputs:
        layer = layers[j]
        what = _what(layer)
        ops = out.ops[j]
        raw = layer.open_compressed()
        try:
            stream, _ = open_decompressed(raw, what)
            tar = DiffIdReader(stream, layer.diff_id, what)
            reader = TarReader(tar, what)  # type: ignore[arg-type]
            count = 0
            for o, entry in enumerate(reader):
                count += 1
                op = ops.get(o)
                if op is None:
                    raise LayerError(f"{what}: layer has more entries than when it was scanned")
                for header in op.prefix:
                    write(header)
                action = op.action
                if action == COPY:
                    write(rewrite_header(entry) if entry.has_global else entry.header)
                    reader.copy_data(write)
                elif action == DROP:
                    pass
                elif action == RENAME:
                    write(rewrite_header(entry, path=op.path))
                    reader.copy_data(write)
                elif action == RELINK:
                    write(rewrite_header(entry, linkname=op.linkname))
                elif action == FETCH:
                    assert op.src is not None and op.path is not None
                    _fetch(layers[op.src[0]], op.src[1], op.path, write)
                if progress:
                    progress(entry.size + 512)
            if count != len(ops):
                raise LayerError(f"{what}: layer has fewer entries than when it was scanned")
            tar.drain()
        except LayerError as exc:
            raise blame_blob(raw, exc) from exc
        finally:
            raw.close()
    write(END_OF_ARCHIVE)


def _fetch(layer: Layer, ordinal: int, path: str, write: Callable[[bytes], object]) -> None:
    """Emit entry ``ordinal`` of another input layer under ``path`` (a hardlink made a file)."""
    what = _what(layer)
    raw: BinaryIO = layer.open_compressed()
    try:
        stream, _ = open_decompressed(raw, what)
        reader = TarReader(stream, what)  # type: ignore[arg-type]
        for o, entry in enumerate(reader):
            if o == ordinal:
                write(rewrite_header(entry, path=path))
                reader.copy_data(write)
                return
        raise LayerError(f"{what}: entry {ordinal} vanished since the scan")
    finally:
        raw.close()
