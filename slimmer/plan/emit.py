"""Planning one output layer: the union of its input layers, what survives the strip
decisions, the whiteouts it needs against lower layers, hardlinks whose data moved, and the
emission order (a header-only preamble, then entries in stream order, parents first)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from slimmer.fs.index import LayerIndex, Rec
from slimmer.fs.overlay import Overlay, Ref, add_ancestors, ancestors, apply_layer
from slimmer.fs.stack import Stack
from slimmer.oci.layer import DIR, HARDLINK, META, OPAQUE, WHITEOUT
from slimmer.plan.dedupe import duplicate_sets, link_duplicates
from slimmer.plan.model import (
    COPY,
    COPY_OP,
    DROP,
    DROP_OP,
    FETCH,
    REBUILD,
    RELINK,
    RENAME,
    REWRITE,
    LayerReason,
    Op,
    OutputLayer,
    PlanOptions,
    PreambleEntry,
    Removal,
    Rewrite,
    Whiteout,
)
from slimmer.plan.strip import StripDecisions


@dataclass
class LowerPaths:
    """What the layers below the current output layer hold: paths (with their ancestors) and
    directories with something below them. Decides which whiteouts can hit anything."""

    paths: set[str] = field(default_factory=set)
    parents: set[str] = field(default_factory=set)

    def add_layer(self, recs: Sequence[Rec]) -> None:
        paths, parents = self.paths, self.parents
        for r in recs:
            if r.kind in (WHITEOUT, OPAQUE, META):
                continue
            paths.add(r.path)
            add_ancestors(r.path, parents)
        paths.update(parents)


class _Deletions:
    """Ordered deletion records of a merged run, with cheap removal of everything below a
    path (an overlay-style children index, so big layers stay linear)."""

    def __init__(self) -> None:
        self._kind: dict[str, str] = {}
        self._children: dict[str, set[str]] = {}

    def get(self, path: str) -> str | None:
        return self._kind.get(path)

    def put(self, path: str, kind: str) -> None:
        self._kind.pop(path, None)   # re-insert so order follows the latest event
        self._kind[path] = kind
        p = path
        while p:
            parent = p.rpartition("/")[0]
            kids = self._children.setdefault(parent, set())
            if p in kids:
                break
            kids.add(p)
            p = parent

    def drop_below(self, path: str) -> None:
        stack = list(self._children.pop(path, ()))
        while stack:
            p = stack.pop()
            self._kind.pop(p, None)
            stack.extend(self._children.pop(p, ()))

    def items(self) -> list[tuple[str, str]]:
        return list(self._kind.items())


@dataclass
class _Links:
    """How surviving hardlinks are written: re-pointed at another name (``relinks``), their
    data moved to the first link (``moved_to``) or fetched from a lower layer (``fetches``)."""

    relinks: dict[Ref, str] = field(default_factory=dict)
    moved_to: dict[Ref, str] = field(default_factory=dict)
    fetches: dict[Ref, Ref] = field(default_factory=dict)
    moved_links: set[Ref] = field(default_factory=set)
    changed: bool = False


class GroupPlanner:
    """Plans the output layer made of one run of input layers (``group``)."""

    def __init__(self, group: tuple[int, ...], recs: Sequence[Sequence[Rec]],
                 indexes: Mapping[int, LayerIndex], stack: Stack, strips: StripDecisions,
                 lower: LowerPaths, options: PlanOptions,
                 rewrites: Mapping[Ref, Rewrite] | None = None) -> None:
        self.group = group
        self.rewrites = rewrites or {}
        self.in_group = set(group)
        self.recs = recs
        self.indexes = indexes
        self.stack = stack
        self.strips = strips
        self.lower = lower
        self.options = options
        self.overlay = Overlay()
        self.deletions = _Deletions()
        self.survivors: dict[str, Ref] = {}
        self.emitted: set[str] = set()

    def rec(self, ref: Ref) -> Rec:
        return self.recs[ref[0]][ref[1]]

    def plan(self, sizes: Sequence[int]) -> OutputLayer | None:
        """The rebuilt layer, or None when the group is a single layer that stays as it is."""
        self._union()
        removed, dropped_any = self._removals()
        whiteouts, stripped_here = self._whiteouts()
        links = self._links()
        dupes = self._duplicates()
        if not (len(self.group) > 1 or dropped_any or stripped_here or links.changed
                or self._rewritten() or self._dedupes(dupes)):
            return None
        preamble: list[PreambleEntry] = []
        for wh in whiteouts:
            preamble.extend(self._hoist(wh.path, include_self=wh.opaque))
            preamble.append(wh)
        ops = {j: self._ops(j, links) for j in self.group}
        deduped = link_duplicates(dupes, ops, self.recs)
        target = self.options.output_compression(self.indexes[self.group[0]].compression)
        return OutputLayer(
            self.group, REBUILD, target, sum(sizes[j] for j in self.group),
            sum(self.indexes[j].tar_size for j in self.group), removed, preamble, ops,
            LayerReason.MERGED if len(self.group) > 1 else LayerReason.STRIPPED,
            deduped=deduped)

    def _duplicates(self) -> list[list[Ref]]:
        """With --dedupe: sets of identical surviving files of the group, each set in archive
        order (files whose content --cuda-arch rewrites are left alone)."""
        if not self.options.dedupe:
            return []
        return duplicate_sets(((ref, self.rec(ref)) for ref in self.survivors.values()
                               if ref not in self.rewrites), self.options.dedupe_min_size)

    def _dedupes(self, dupes: list[list[Ref]]) -> bool:
        """Whether duplicates alone rebuild the group: yes, except a base layer (that one
        stays byte-identical unless something else changes it anyway)."""
        return bool(dupes) and self.group[0] >= self.options.base

    # -- the union and what survives ------------------------------------------------------

    def _union(self) -> None:
        deletions = self.deletions
        lower_paths = self.lower.paths

        def on_delete(kind: str, path: str) -> None:
            # Only deletions of lower paths become whiteouts (``_whiteouts``); nothing lower
            # lies below a path that is not one, so skipping it changes no record that can.
            if path not in lower_paths:
                return
            if kind != "opaque":
                deletions.drop_below(path)
                deletions.put(path, "whiteout")  # a non-directory replaces lower content too
            elif deletions.get(path) != "whiteout":
                deletions.put(path, kind)

        for j in self.group:
            apply_layer(self.overlay, j, self.recs[j],
                        on_delete=on_delete if self.group[0] else None)
        dropped = self.strips.dropped
        final = self.overlay.entries
        self.survivors = {path: ref for path, ref in final.items() if ref not in dropped}
        # Directories never go while something below them survives in this layer.
        needed_dirs: set[str] = set()
        for p in self.survivors:
            add_ancestors(p, needed_dirs)
        for path, ref in final.items():
            if ref in dropped and path in needed_dirs and self.overlay.is_dir[path]:
                self.survivors[path] = ref

    def _removals(self) -> tuple[list[Removal], bool]:
        """The files this layer loses, and whether it loses any entry at all."""
        removed: list[Removal] = []
        dropped_any = False
        for j in self.group:
            for o, rec in enumerate(self.recs[j]):
                rule = self.strips.dropped.get((j, o))
                if rule is None or self.survivors.get(rec.path) == (j, o):
                    continue
                dropped_any = True
                if rec.kind != DIR:
                    removed.append(Removal(rec.path, rec.size, rule, j, rec.kind,
                                           (j, o) not in self.stack.final_refs))
        return removed, dropped_any

    def _whiteouts(self) -> tuple[list[Whiteout], bool]:
        """Whiteouts the output needs: lower deletions that may hit something, and stripped
        paths whose final copy is here while older copies may exist below (the second value
        says whether there were any of those)."""
        out: list[Whiteout] = []
        stripped_here = False
        if self.group[0] == 0:
            return out, stripped_here
        lower, overlay = self.lower, self.overlay
        for path, kind in self.deletions.items():
            if kind == "whiteout" and path in lower.paths:
                if path in self.survivors and not overlay.is_dir[path]:
                    continue  # the surviving non-directory entry replaces lower content itself
                out.append(Whiteout(path))
            elif kind == "opaque" and path in lower.parents:
                out.append(Whiteout(path, opaque=True))
        listed = {w.path for w in out}
        for path, ref in overlay.entries.items():
            if path in self.strips.stripped and self.stack.final.entries.get(path) == ref \
                    and path not in self.survivors and path in lower.paths \
                    and path not in listed:
                out.append(Whiteout(path))
                stripped_here = True
        return _uncovered(out), stripped_here

    def _links(self) -> _Links:
        """Hardlinks whose data source does not survive under its own name in this layer."""
        links = _Links()
        orphans: dict[Ref, list[tuple[Ref, str]]] = {}
        for path, ref in sorted(self.survivors.items(), key=lambda item: item[1]):
            rec = self.rec(ref)
            if rec.kind != HARDLINK:
                continue
            src = self.stack.link_src[ref]
            src_rec = self.rec(src)
            if src[0] in self.in_group and self.survivors.get(src_rec.path) == src:
                if rec.linkname != src_rec.path:
                    links.relinks[ref] = src_rec.path
            elif src[0] not in self.in_group and len(self.group) == 1 \
                    and src not in self.strips.dropped:
                continue  # a link into an unchanged lower layer, as in the input: leave it
            else:
                orphans.setdefault(src, []).append((ref, path))
        for src, found in orphans.items():
            links.changed = True
            (first_ref, first_path), rest = found[0], found[1:]
            if src[0] in self.in_group:
                links.moved_to[src] = first_path
                links.moved_links.add(first_ref)
            else:
                links.fetches[first_ref] = src
            for ref, _ in rest:
                links.relinks[ref] = first_path
        return links

    # -- emission ---------------------------------------------------------------------------

    def _hoist(self, path: str, include_self: bool = False) -> list[bytes]:
        """Headers of not-yet-emitted surviving directories above ``path`` (root first)."""
        out: list[bytes] = []
        chain = ([""] if path else []) + ancestors(path) + ([path] if include_self and path
                                                            else [])
        for a in chain:
            if a in self.emitted:
                continue
            ref = self.survivors.get(a)
            if ref is None or not self.overlay.is_dir[a]:
                continue
            self.emitted.add(a)
            header = self.rec(ref).dir_header
            assert header is not None
            out.append(header)
        return out

    def _ops(self, j: int, links: _Links) -> dict[int, Op]:
        ops: dict[int, Op] = {}
        for o, rec in enumerate(self.recs[j]):
            if rec.kind in (WHITEOUT, OPAQUE, META):
                ops[o] = DROP_OP        # re-emitted in the preamble where still needed
            else:
                ops[o] = self._entry_op((j, o), rec, links)
        return ops

    def _rewritten(self) -> bool:
        """Whether a file of the group gets new content (``--cuda-arch``)."""
        return any(ref[0] in self.in_group for ref in self.rewrites)

    def _entry_op(self, ref: Ref, rec: Rec, links: _Links) -> Op:
        """The op of a directory, file, link or other entry."""
        if rec.kind == DIR:
            return self._dir_op(ref, rec)
        if ref in links.moved_to:                       # data re-emitted under a link's name
            new_path = links.moved_to[ref]
            return Op(RENAME, tuple(self._hoist(new_path)), path=new_path,
                      rewrite=self.rewrites.get(ref))
        if self.survivors.get(rec.path) != ref or ref in links.moved_links:
            return DROP_OP
        before = tuple(self._hoist(rec.path))
        if ref in links.fetches:
            src = links.fetches[ref]
            return Op(FETCH, before, path=rec.path, src=src, rewrite=self.rewrites.get(src))
        if ref in links.relinks:
            return Op(RELINK, before, linkname=links.relinks[ref])
        if ref in self.rewrites:
            return Op(REWRITE, before, rewrite=self.rewrites[ref])
        return Op(COPY, before) if before else COPY_OP

    def _dir_op(self, ref: Ref, rec: Rec) -> Op:
        if rec.path in self.emitted or rec.path not in self.survivors \
                or not self.overlay.is_dir[rec.path]:
            return DROP_OP
        prefix = self._hoist(rec.path)
        self.emitted.add(rec.path)
        final_ref = self.survivors[rec.path]
        if final_ref == ref:
            return Op(COPY, tuple(prefix)) if prefix else COPY_OP
        header = self.rec(final_ref).dir_header
        assert header is not None
        return Op(DROP, tuple(prefix) + (header,))


def covered(path: str, hidden: set[str]) -> bool:
    """Whether ``path`` or one of its ancestors is in ``hidden`` (whiteouts this output
    layer writes): everything lower at or below it is hidden already."""
    return path in hidden or any(a in hidden for a in ancestors(path))


def marker_dir(path: str, opaque: bool) -> str:
    """The directory a whiteout of ``path``, or the opaque marker of directory ``path``,
    lies in."""
    return path if opaque else path.rpartition("/")[0]


def _uncovered(whiteouts: list[Whiteout]) -> list[Whiteout]:
    """Drop whiteouts and opaque markers below a path this layer whites out as a whole: they
    hide nothing more, and an unpacker that applies them would create the covered directory
    first, so that the whiteout of the directory itself fails (containerd: "failed to
    convert whiteout file ...: file exists")."""
    hidden = {w.path for w in whiteouts if not w.opaque}
    return [w for w in whiteouts if not covered(marker_dir(w.path, w.opaque), hidden)]
