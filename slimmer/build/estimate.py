"""The tar size a planned layer will have, from its ops and the scan: what ``analyze`` shows
before anything is built (exact for copied entries, at most a block off per renamed, relinked
or deduplicated one)."""

from __future__ import annotations

from typing import Mapping

from slimmer.codec.tarwrite import END_OF_ARCHIVE, whiteout_header
from slimmer.fs.index import LayerIndex
from slimmer.plan.model import (
    COPY,
    FETCH,
    LINK,
    REBUILD,
    RELINK,
    RENAME,
    REWRITE,
    OutputLayer,
    Whiteout,
)

_BLOCK = 512


def _padded(size: int) -> int:
    return (size + _BLOCK - 1) & ~(_BLOCK - 1)


def _needs_pax(name: str) -> bool:
    """True when a tar header cannot hold ``name`` itself (``codec.tarwrite`` rules)."""
    raw = name.encode("utf-8", "surrogateescape")
    return len(raw) > 100 or not raw.isascii()


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
            if op.action in (COPY, REWRITE):       # a rewrite keeps the size
                size += rec.hsize + _padded(rec.size)
            elif op.action == RENAME:              # a new header, perhaps with PAX records
                size += rec.hsize + _padded(rec.size) + _BLOCK
            elif op.action == RELINK:
                size += rec.hsize + _BLOCK
            elif op.action == LINK:                # the header only; a long target needs a
                assert op.linkname is not None     # PAX block (or fits in the one it has)
                if _needs_pax(op.linkname):
                    size += _BLOCK if rec.hsize > _BLOCK else 2 * _BLOCK
                size += rec.hsize
            elif op.action == FETCH:
                assert op.src is not None
                src = indexes[op.src[0]].entries[op.src[1]]
                size += src.hsize + _padded(src.size) + _BLOCK
    return size
