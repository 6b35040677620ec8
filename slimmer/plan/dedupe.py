"""Deduplication (``--dedupe``): regular files of one output layer with equal content, mode,
owner and xattrs become one file plus hardlinks to it, the kept copy being the first one the
layer writes; and the identical files that stay apart because they live in different output
layers (lower layers are never rewritten for it), which the report counts."""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Sequence

from slimmer.fs.index import Rec
from slimmer.fs.overlay import Ref
from slimmer.oci.layer import FILE
from slimmer.plan.model import LINK, CrossLayerCopies, DedupeGroup, Op


def _identity(rec: Rec) -> Hashable | None:
    """What two files must share to become one inode; None for files that were not hashed."""
    if rec.kind != FILE or rec.digest is None or rec.typeflag == b"S":
        return None
    return rec.digest, rec.size, rec.mode, rec.owner


def duplicate_sets(candidates: Iterable[tuple[Ref, Rec]], min_size: int) -> list[list[Ref]]:
    """Refs of identical files (at least ``min_size`` bytes), each set in archive order, the
    sets ordered by their first ref; files without a twin are left out."""
    by_key: dict[Hashable, list[Ref]] = {}
    for ref, rec in candidates:
        key = _identity(rec) if rec.size >= min_size else None
        if key is not None:
            by_key.setdefault(key, []).append(ref)
    return sorted((sorted(refs) for refs in by_key.values() if len(refs) > 1),
                  key=lambda refs: refs[0])


def link_duplicates(sets: Sequence[Sequence[Ref]], ops: Mapping[int, dict[int, Op]],
                    recs: Sequence[Sequence[Rec]]) -> list[DedupeGroup]:
    """Turn every copy but the first of each set into a hardlink to the first (its ops are
    replaced in ``ops``; the hoisted headers before it stay); the groups, for the report."""
    groups: list[DedupeGroup] = []
    for refs in sets:
        (j0, o0), rest = refs[0], refs[1:]
        first = recs[j0][o0]
        for j, o in rest:
            ops[j][o] = Op(LINK, ops[j][o].prefix, linkname=first.path)
        groups.append(DedupeGroup(first.size, tuple(recs[j][o].path for j, o in refs)))
    return groups


def cross_layer_copies(visible: Mapping[Ref, Rec], output_of: Mapping[int, int],
                       min_size: int) -> list[CrossLayerCopies]:
    """Identical visible files spread over more than one output layer (``output_of``: input
    layer -> output layer), largest waste first."""
    sets = duplicate_sets(visible.items(), min_size)
    recs = visible
    out = []
    for refs in sets:
        layers = tuple(output_of[j] for j, _ in refs)
        if len(set(layers)) > 1:
            out.append(CrossLayerCopies(recs[refs[0]].size,
                                        tuple(recs[r].path for r in refs), layers))
    return sorted(out, key=lambda c: (-c.extra, c.paths))
