"""Planning a rebuilt single layer in stream order, so the build can write it while the scan
reads it (``build.speculate``) and keep the result when the whole-stack plan agrees.

Differences from a merged run (``emit.GroupPlanner``): the layer's own whiteouts and opaque
markers stay where they are (they already hide only lower content); a directory a strip rule
selects is written just before the first entry below it that stays; and what only the whole
stack can decide comes in a ``trailer`` after the last entry: whiteouts hiding stripped paths
in lower layers (safe at the end: this layer keeps nothing at or below those paths) and
selected directories that stay although nothing below them stays here.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from slimmer.fs.index import Rec
from slimmer.oci.layer import DIR, META, OPAQUE, WHITEOUT
from slimmer.plan.dedupe import link_duplicates
from slimmer.plan.emit import GroupPlanner, _Links, covered, marker_dir
from slimmer.plan.model import (
    COPY,
    COPY_OP,
    DROP,
    DROP_OP,
    REBUILD,
    LayerReason,
    Op,
    OutputLayer,
    PreambleEntry,
)

#: One written item of a layer's body: ("h", header bytes) for a directory header written
#: ahead of an entry, ("e", ordinal, action, path, linkname, source, rewrite) for an entry.
TraceItem = tuple[object, ...]


class StreamingPlanner(GroupPlanner):
    """Plans a group of one input layer in stream order (see the module docstring)."""

    def plan(self, sizes: Sequence[int]) -> OutputLayer | None:
        assert len(self.group) == 1
        j = self.group[0]
        self._union()
        removed, dropped_any = self._removals()
        whiteouts, stripped_here = self._whiteouts()
        links = self._links()
        dupes = self._duplicates()
        changed = dropped_any or stripped_here or links.changed or self._rewritten()
        if not (changed or self._dedupes(dupes)):
            return None
        hidden = {wh.path for wh in whiteouts if not wh.opaque}
        ops = {j: self._stream_ops(j, links, hidden)}
        deduped = link_duplicates(dupes, ops, self.recs)
        own = {rec.target for rec in self.recs[j] if rec.kind == WHITEOUT}
        trailer: list[PreambleEntry] = []
        for o, rec in enumerate(self.recs[j]):
            if (j, o) in self.strips.matched_dirs and self.survivors.get(rec.path) == (j, o):
                trailer.extend(self._hoist(rec.path, include_self=True))
        for wh in whiteouts:
            if wh.opaque or wh.path in own:
                continue            # the layer's own marker, kept where it is
            trailer.extend(self._hoist(wh.path))
            trailer.append(wh)
        target = self.options.output_compression(self.indexes[j].compression)
        reason = LayerReason.STRIPPED if changed else LayerReason.DEDUPED
        return OutputLayer((j,), REBUILD, target, sizes[j], self.indexes[j].tar_size, removed,
                           [], ops, reason, trailer=trailer, streaming=True, deduped=deduped)

    def _stream_ops(self, j: int, links: _Links, hidden: set[str]) -> dict[int, Op]:
        ops: dict[int, Op] = {}
        for o, rec in enumerate(self.recs[j]):
            ref = (j, o)
            if rec.kind == META:
                ops[o] = DROP_OP
            elif rec.kind in (WHITEOUT, OPAQUE) and self._covered_marker(rec, hidden):
                ops[o] = DROP_OP        # inside a directory the trailer whites out as a whole
            elif rec.kind in (WHITEOUT, OPAQUE):
                before = tuple(self._hoist(rec.path))
                ops[o] = Op(COPY, before) if before else COPY_OP
            elif rec.kind == DIR and ref in self.strips.matched_dirs:
                ops[o] = DROP_OP        # written lazily: hoisted, or in the trailer
            else:
                ops[o] = self._entry_op(ref, rec, links)
        return ops

    def _covered_marker(self, rec: Rec, hidden: set[str]) -> bool:
        """Whether the layer's own whiteout or opaque marker lies in a directory that goes
        from this layer and hides nothing more: the trailer whites the directory out whole,
        or the layer's entry of the directory goes and nothing lower lies at the whited-out
        path (below the opaque directory). Written, it would make an unpacker such as
        containerd's create the directory."""
        where = marker_dir(rec.target, rec.kind == OPAQUE)
        if not where or where in self.survivors:
            return False
        if covered(where, hidden):
            return True
        hits = self.lower.parents if rec.kind == OPAQUE else self.lower.paths
        return self.overlay.get(where) is not None and rec.target not in hits


def header_item(header: bytes) -> TraceItem:
    """The trace item of a directory header written ahead of an entry."""
    return ("h", header)


def entry_item(o: int, op: Op) -> TraceItem:
    """The trace item of entry ``o`` written as ``op`` says (its prefix aside)."""
    return ("e", o, op.action, op.path, op.linkname, op.src, op.rewrite)


def body_trace(out: OutputLayer, recs: Sequence[Sequence[Rec]]) -> Iterator[TraceItem]:
    """What building ``out`` writes before its trailer, item by item: two plans with equal
    traces give equal bytes."""
    for j in out.inputs:
        ops = out.ops[j]
        for o in range(len(recs[j])):
            op = ops[o]
            for header in op.prefix:
                yield header_item(header)
            if op.action != DROP:
                yield entry_item(o, op)
