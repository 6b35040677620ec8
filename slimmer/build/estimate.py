"""The tar size a planned layer will have, from its ops and the scan: what ``analyze`` shows
before anything is built (exact for copied entries, at most a block off per renamed one)."""

from __future__ import annotations

from typing import Mapping

from slimmer.codec.tarwrite import END_OF_ARCHIVE, whiteout_header
from slimmer.fs.index import LayerIndex
from slimmer.plan.model import COPY, FETCH, REBUILD, RELINK, RENAME, OutputLayer, Whiteout

_BLOCK = 512


def _padded(size: int) -> int:
    return (size + _BLOCK - 1) & ~(_BLOCK - 1)


def estimate_tar_size(out: OutputLayer, indexes: Mapping[int, LayerIndex]) -> int | None:
    """Uncompressed size of the output layer (None when its input was never scanned)."""
    if out.mode != REBUILD:
        return out.input_tar_size
    size = len(END_OF_ARCHIVE)
    for item in (*out.preamble, *out.trailer):
        size += len(whiteout_header(item.path, item.opaque)) if isinstance(item, Whiteout) \
            else len(item)
    for j in out.inputs:
        recs = indexes[j].entries
        for o, op in out.ops[j].items():
            size += sum(map(len, op.prefix))
            rec = recs[o]
            if op.action == COPY:
                size += rec.hsize + _padded(rec.size)
            elif op.action == RENAME:              # a new header, perhaps with PAX records
                size += rec.hsize + _padded(rec.size) + _BLOCK
            elif op.action == RELINK:
                size += rec.hsize + _BLOCK
            elif op.action == FETCH:
                assert op.src is not None
                src = indexes[op.src[0]].entries[op.src[1]]
                size += src.hsize + _padded(src.size) + _BLOCK
    return size
