"""The plan: a pure function from (image, layer indexes, matcher, options) to what to build.

For every output layer it says which input layers it comes from, whether it is passed through
byte-identical, recompressed, or rebuilt, and, for rebuilt layers, what happens to each input
entry (copied, dropped, renamed, relinked, fetched) and which header-only entries (hoisted
directories, whiteouts) come first. The pipeline just executes it; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .compress import GZIP, NONE, ZSTD
from .errors import LayerError, UsageError
from .model import (DOCKER_LAYER_FOREIGN, DOCKER_LAYER_TAR, OCI_LAYER_NONDIST_GZIP,
                    OCI_LAYER_NONDIST_TAR, OCI_LAYER_NONDIST_ZSTD, OCI_LAYER_TAR, OCI_LAYER_ZSTD)
from .overlay import Overlay, Ref, ancestors, apply_layer
from .protect import protected_paths
from .scan import LayerIndex, Rec
from .tarstream import DIR, END_OF_ARCHIVE, FILE, HARDLINK, META, OPAQUE, WHITEOUT, whiteout_header

PASSTHROUGH, RECOMPRESS, REBUILD = "passthrough", "recompress", "rebuild"
COPY, DROP, RENAME, RELINK, FETCH = "copy", "drop", "rename", "relink", "fetch"
MERGE_MODES = ("auto", "none", "all")
KEEP = "keep"
DEFAULT_MERGE_THRESHOLD = 16 << 20
_FOREIGN = frozenset({DOCKER_LAYER_FOREIGN, OCI_LAYER_NONDIST_TAR, OCI_LAYER_NONDIST_GZIP,
                      OCI_LAYER_NONDIST_ZSTD})


@dataclass(frozen=True)
class PlanOptions:
    """How to slim: merge policy, base layers, output compression."""

    merge: str = "auto"
    merge_threshold: int = DEFAULT_MERGE_THRESHOLD
    base: int = 0
    keep_base: bool = False
    compression: str = ZSTD        # zstd | gzip | none | keep
    level: int | None = None

    def __post_init__(self) -> None:
        if self.merge not in MERGE_MODES:
            raise UsageError(f"--merge must be one of {', '.join(MERGE_MODES)}")
        if self.compression not in (ZSTD, GZIP, NONE, KEEP):
            raise UsageError("--compression must be zstd, gzip, none or keep")
        if self.base < 0 or self.merge_threshold < 0:
            raise UsageError("--base and --merge-threshold must not be negative")


class Op:
    """What to do with one input entry of a rebuilt layer; ``prefix`` headers go first."""

    __slots__ = ("action", "prefix", "path", "linkname", "src")

    def __init__(self, action: str, prefix: tuple[bytes, ...] = (), path: str | None = None,
                 linkname: str | None = None, src: Ref | None = None) -> None:
        self.action = action
        self.prefix = prefix
        self.path = path
        self.linkname = linkname
        self.src = src

    def __repr__(self) -> str:
        extra = self.path or self.linkname or ""
        return f"Op({self.action}{' ' + extra if extra else ''}, prefix={len(self.prefix)})"


@dataclass(frozen=True)
class Removal:
    """A file removed from the image: by which rule, from which input layer."""

    path: str
    size: int
    rule: str
    layer: int
    kind: str
    shadowed: bool = False      # not visible in the input image (overwritten/deleted later)


@dataclass(frozen=True)
class Override:
    """A strip rule that matched but was overruled (keep rule or entrypoint protection)."""

    path: str
    rule: str
    reason: str


@dataclass
class OutputLayer:
    """One output layer of the plan."""

    inputs: tuple[int, ...]
    mode: str
    compression: str
    input_size: int
    input_tar_size: int | None
    output_tar_size: int | None = None
    removed: list[Removal] = field(default_factory=list)
    preamble: list[bytes] = field(default_factory=list)
    ops: dict[int, dict[int, Op]] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def removed_bytes(self) -> int:
        return sum(r.size for r in self.removed)


@dataclass
class ImagePlan:
    """The plan for one platform image."""

    layers: list[OutputLayer]
    overrides: list[Override]
    protected: list[str]
    wasted: list[int | None]           # per input layer: bytes overwritten/deleted later
    scanned: bool

    @property
    def removed(self) -> list[Removal]:
        return [r for layer in self.layers for r in layer.removed]

    def to_dict(self) -> dict[str, Any]:
        """Printable form (no header bytes)."""
        return {
            "layers": [{
                "inputs": list(ly.inputs), "mode": ly.mode, "compression": ly.compression,
                "input_size": ly.input_size, "input_tar_size": ly.input_tar_size,
                "output_tar_size": ly.output_tar_size, "removed_files": len(ly.removed),
                "removed_bytes": ly.removed_bytes, "whiteouts": ly.whiteouts,
                "reason": ly.reason,
            } for ly in self.layers],
            "overrides": [o.__dict__ for o in self.overrides],
            "protected": self.protected,
            "wasted": self.wasted,
        }


# ---------------------------------------------------------------------------------------------

def layer_compression(media_type: str) -> str:
    """Compression a layer media type declares (the pipeline still checks magic bytes)."""
    if media_type.endswith("+zstd") or media_type == OCI_LAYER_ZSTD:
        return ZSTD
    if media_type in (OCI_LAYER_TAR, DOCKER_LAYER_TAR, OCI_LAYER_NONDIST_TAR):
        return NONE
    return GZIP


def group_layers(sizes: Sequence[int], media_types: Sequence[str],
                 options: PlanOptions) -> list[tuple[int, ...]]:
    """Split input layers into runs to merge; order never changes.

    Base layers and foreign layers stay alone; ``auto`` merges runs of adjacent layers smaller
    than the threshold, ``all`` merges every non-base layer, ``none`` merges nothing.
    """
    groups: list[tuple[int, ...]] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            groups.append(tuple(run))
            run.clear()

    for i, size in enumerate(sizes):
        alone = (i < options.base or media_types[i] in _FOREIGN or options.merge == "none"
                 or (options.merge == "auto" and size >= options.merge_threshold))
        if alone:
            flush()
            groups.append((i,))
        else:
            run.append(i)
    flush()
    return groups


def plan_image(sizes: Sequence[int], media_types: Sequence[str],
               indexes: Mapping[int, LayerIndex] | None, matcher: Any | None,
               config: Any | None, options: PlanOptions) -> ImagePlan:
    """Plan one image. ``indexes`` maps every input layer to its scan (None: nothing scanned,
    only allowed without stripping or merging); ``matcher`` is a profiles Matcher or None."""
    n = len(sizes)
    groups = group_layers(sizes, media_types, options)
    kept = {i for i in range(n)
            if media_types[i] in _FOREIGN or (options.keep_base and i < options.base)}
    if indexes is None:
        if matcher is not None or any(len(g) > 1 for g in groups):
            raise ValueError("stripping or merging needs layer indexes")
        layers = [_unchanged(g[0], sizes, media_types, None, options) for g in groups]
        return ImagePlan(layers, [], [], [None] * n, scanned=False)

    recs = [indexes[i].entries for i in range(n)]
    walk = _global_walk(recs)
    protected = protected_paths(walk.final, recs, config) if config is not None else set()
    dropped, overrides, stripped = _strip_decisions(walk, recs, kept, matcher, protected)

    out: list[OutputLayer] = []
    seen_paths: set[str] = set()     # paths (and their ancestors) present in lower layers
    seen_parents: set[str] = set()   # directories with something below them in lower layers
    for group in groups:
        layer = _plan_group(group, recs, indexes, walk, dropped, stripped, kept, seen_paths,
                            seen_parents, sizes, media_types, options)
        out.append(layer)
        for j in group:
            for r in recs[j]:
                if r.kind in (WHITEOUT, OPAQUE, META):
                    continue
                up = ancestors(r.path)
                seen_paths.add(r.path)
                seen_paths.update(up)
                seen_parents.update(up)
    return ImagePlan(out, overrides, sorted(protected), walk.wasted, scanned=True)


def _unchanged(i: int, sizes: Sequence[int], media_types: Sequence[str],
               index: LayerIndex | None, options: PlanOptions) -> OutputLayer:
    source = index.compression if index is not None else layer_compression(media_types[i])
    target = source if options.compression == KEEP else options.compression
    foreign = media_types[i] in _FOREIGN
    mode = PASSTHROUGH if (target == source or foreign) else RECOMPRESS
    tar = index.tar_size if index is not None else None
    return OutputLayer((i,), mode, source if mode == PASSTHROUGH else target, sizes[i], tar, tar,
                       reason="foreign layer" if foreign else "")


# -- walk 1: the whole stack ---------------------------------------------------------------------

@dataclass
class _Walk:
    final: Overlay
    link_src: dict[Ref, Ref]          # hardlink entry -> data-bearing entry it resolves to
    wasted: list[int | None]
    final_refs: set[Ref]


def _global_walk(recs: Sequence[Sequence[Rec]]) -> _Walk:
    overlay = Overlay()
    link_src: dict[Ref, Ref] = {}
    for j, layer in enumerate(recs):
        def on_entry(o: int, rec: Rec, j: int = j) -> None:
            if rec.kind != HARDLINK:
                return
            target = overlay.get(rec.linkname)
            if target is None:
                raise LayerError(f"layer {j}: hardlink {rec.path!r} points to missing "
                                 f"{rec.linkname!r}")
            if overlay.is_dir[rec.linkname]:
                raise LayerError(f"layer {j}: hardlink {rec.path!r} points to directory "
                                 f"{rec.linkname!r}")
            link_src[(j, o)] = link_src.get(target, target)
        apply_layer(overlay, j, layer, on_entry=on_entry)
    final_refs = set(overlay.entries.values())
    wasted: list[int | None] = []
    for j, layer in enumerate(recs):
        wasted.append(sum(r.size for o, r in enumerate(layer)
                          if r.kind == FILE and (j, o) not in final_refs))
    return _Walk(overlay, link_src, wasted, final_refs)


# -- strip decisions ---------------------------------------------------------------------------

def _strip_decisions(walk: _Walk, recs: Sequence[Sequence[Rec]], kept: set[int],
                     matcher: Any | None, protected: set[str]
                     ) -> tuple[dict[Ref, str], list[Override], dict[str, str]]:
    """Entries to drop (ref -> rule id), the overrides to report, and the paths of the final
    tree that are stripped (path -> rule id)."""
    dropped: dict[Ref, str] = {}
    overrides: list[Override] = []
    if matcher is None:
        return dropped, overrides, {}
    final = walk.final

    def data_rec(ref: Ref) -> Rec:
        src = walk.link_src.get(ref, ref)
        return recs[src[0]][src[1]]

    def match(path: str, rec: Rec, ref: Ref) -> Any:
        data = data_rec(ref) if rec.kind == HARDLINK else rec
        return matcher.match("/" + path, rec.kind, data.size, data.content)

    # Final tree: files first, then directories bottom-up (a directory goes only if all of it goes).
    stripped: dict[str, str] = {}
    dirs: list[str] = []
    for path, ref in final.entries.items():
        if ref[0] in kept or not path:
            continue
        rec = recs[ref[0]][ref[1]]
        if rec.kind == DIR:
            dirs.append(path)
            continue
        m = match(path, rec, ref)
        if m is None:
            continue
        if m.kept_by is not None:
            overrides.append(Override(path, m.rule.id, f"kept by {m.kept_by.id}"))
        elif path in protected:
            overrides.append(Override(path, m.rule.id, "needed by the entrypoint"))
        else:
            stripped[path] = m.rule.id
    for path in sorted(dirs, key=lambda p: -p.count("/")):
        ref = final.entries[path]
        m = match(path, recs[ref[0]][ref[1]], ref)
        if m is None or m.kept_by is not None or path in protected:
            continue
        if all(d in stripped for d in final.descendants(path) if d in final.entries):
            stripped[path] = m.rule.id
    for path, rule in stripped.items():
        dropped[final.entries[path]] = rule
    stripped_dirs = {p for p in stripped if final.is_dir[p]}
    # Entries shadowed later (not in the final tree) that match a rule go too.
    for j, layer in enumerate(recs):
        if j in kept:
            continue
        for o, rec in enumerate(layer):
            ref = (j, o)
            if rec.kind in (WHITEOUT, OPAQUE, META) or ref in walk.final_refs:
                continue
            if rec.path in stripped:
                dropped[ref] = stripped[rec.path]
                continue
            gone_dir = next((a for a in ancestors(rec.path) if a in stripped_dirs), None)
            if gone_dir is not None:  # below a directory the final image no longer has
                dropped[ref] = stripped[gone_dir]
                continue
            if rec.kind == DIR:
                continue
            m = match(rec.path, rec, ref)
            if m is not None and m.kept_by is None and rec.path not in protected:
                dropped[ref] = m.rule.id
    overrides.sort(key=lambda o: o.path)
    return dropped, overrides, stripped


# -- walk 2: one output layer ------------------------------------------------------------------

def _plan_group(group: tuple[int, ...], recs: Sequence[Sequence[Rec]],
                indexes: Mapping[int, LayerIndex], walk: _Walk, dropped: Mapping[Ref, str],
                stripped: Mapping[str, str], kept: set[int], seen_paths: set[str],
                seen_parents: set[str], sizes: Sequence[int], media_types: Sequence[str],
                options: PlanOptions) -> OutputLayer:
    in_group = set(group)
    k = group[0]
    if len(group) == 1 and k in kept:
        return _unchanged(k, sizes, media_types, indexes[k], options)

    # Group overlay and the deletions it makes in lower layers.
    overlay = Overlay()
    deletions = _Deletions()

    def on_delete(kind: str, path: str) -> None:
        if kind != "opaque":
            deletions.drop_below(path)
            deletions.put(path, "whiteout")  # a non-directory replaces lower content like one
        elif deletions.get(path) != "whiteout":
            deletions.put(path, kind)

    for j in group:
        apply_layer(overlay, j, recs[j], on_delete=on_delete)
    final: dict[str, Ref] = overlay.entries
    survivors = {path: ref for path, ref in final.items() if ref not in dropped}

    # Directories never go while something below them survives in this layer.
    needed_dirs = {a for p in survivors for a in ancestors(p)}
    for path, ref in final.items():
        if ref in dropped and path in needed_dirs and overlay.is_dir[path]:
            survivors[path] = ref

    changed = len(group) > 1
    removed: list[Removal] = []
    for j in group:
        for o, rec in enumerate(recs[j]):
            rule = dropped.get((j, o))
            if rule is not None and survivors.get(rec.path) != (j, o):
                changed = True
                if rec.kind != DIR:
                    removed.append(Removal(rec.path, rec.size, rule, j, rec.kind,
                                           (j, o) not in walk.final_refs))

    # Whiteouts the output needs: lower deletions that may hit something, and stripped paths
    # whose final copy is here while older copies (or what it replaced) may exist below.
    whiteouts: list[tuple[str, bool]] = []
    if k > 0:
        for path, kind in deletions.items():
            if kind == "whiteout" and path in seen_paths:
                if path in survivors and not overlay.is_dir[path]:
                    continue  # the surviving non-directory entry replaces lower content itself
                whiteouts.append((path, False))
            elif kind == "opaque" and path in seen_parents:
                whiteouts.append((path, True))
    if k > 0:
        listed = {w for w, _ in whiteouts}
        for path, ref in final.items():
            if path in stripped and walk.final.entries.get(path) == ref \
                    and path not in survivors and path in seen_paths and path not in listed:
                whiteouts.append((path, False))
                changed = True

    # Hardlinks whose data source does not survive under its own name in this layer.
    ops: dict[int, dict[int, Op]] = {j: {} for j in group}
    relinks: dict[Ref, str] = {}
    moved_to: dict[Ref, str] = {}      # data entry -> path it is emitted under instead
    fetches: dict[Ref, Ref] = {}       # link entry -> data entry fetched from a lower layer
    orphans: dict[Ref, list[tuple[Ref, str]]] = {}
    for path, ref in sorted(survivors.items(), key=lambda item: item[1]):
        rec = recs[ref[0]][ref[1]]
        if rec.kind != HARDLINK:
            continue
        src = walk.link_src[ref]
        src_rec = recs[src[0]][src[1]]
        if src[0] in in_group and survivors.get(src_rec.path) == src:
            if rec.linkname != src_rec.path:
                relinks[ref] = src_rec.path
        elif src[0] not in in_group and len(group) == 1 and src not in dropped:
            continue  # a link into an unchanged lower layer, as in the input: leave it
        else:
            orphans.setdefault(src, []).append((ref, path))
    for src, links in orphans.items():
        changed = True
        (first_ref, first_path), rest = links[0], links[1:]
        if src[0] in in_group:
            moved_to[src] = first_path
        else:
            fetches[first_ref] = src
        for ref, _ in rest:
            relinks[ref] = first_path

    if not changed:
        return _unchanged(k, sizes, media_types, indexes[k], options)

    # Emission order: header-only preamble, then entries in stream order, parents first.
    emitted: set[str] = set()
    preamble: list[bytes] = []

    def hoist(path: str, include_self: bool = False) -> list[bytes]:
        """Headers of not-yet-emitted surviving directories above ``path`` (root first)."""
        out: list[bytes] = []
        chain = ([""] if path else []) + ancestors(path) + ([path] if include_self and path else [])
        for a in chain:
            if a in emitted:
                continue
            ref = survivors.get(a)
            if ref is None or not overlay.is_dir[a]:
                continue
            emitted.add(a)
            header = recs[ref[0]][ref[1]].dir_header
            assert header is not None
            out.append(header)
        return out

    out_size = len(END_OF_ARCHIVE)
    for path, opaque in whiteouts:
        preamble.extend(hoist(path, include_self=True) if opaque else hoist(path))
        preamble.append(whiteout_header(path, opaque))
    out_size += sum(len(h) for h in preamble)

    link_dest = moved_to
    moved_links = {links[0][0] for src, links in orphans.items() if src in moved_to}

    for j in group:
        jops = ops[j]
        for o, rec in enumerate(recs[j]):
            ref = (j, o)
            if rec.kind in (WHITEOUT, OPAQUE, META):
                jops[o] = Op(DROP)
                continue
            if rec.kind == DIR:
                if rec.path in emitted or rec.path not in survivors \
                        or not overlay.is_dir[rec.path]:
                    jops[o] = Op(DROP)
                    continue
                prefix = hoist(rec.path)
                emitted.add(rec.path)
                fref = survivors[rec.path]
                header = recs[fref[0]][fref[1]].dir_header
                assert header is not None
                out_size += sum(map(len, prefix)) + len(header)
                if fref == ref:
                    jops[o] = Op(COPY, tuple(prefix)) if prefix else _COPY
                else:
                    jops[o] = Op(DROP, tuple(prefix) + (header,))
                continue
            if ref in link_dest:                       # data re-emitted under a link's name
                new_path = link_dest[ref]
                prefix = hoist(new_path)
                jops[o] = Op(RENAME, tuple(prefix), path=new_path)
                out_size += sum(map(len, prefix)) + rec.hsize + _padded(rec.size) + 512
                continue
            if survivors.get(rec.path) != ref or ref in moved_links:
                jops[o] = Op(DROP)
                continue
            before = tuple(hoist(rec.path))
            out_size += sum(map(len, before))
            if ref in fetches:
                src = fetches[ref]
                src_rec = recs[src[0]][src[1]]
                jops[o] = Op(FETCH, before, path=rec.path, src=src)
                out_size += src_rec.hsize + _padded(src_rec.size) + 512
            elif ref in relinks:
                jops[o] = Op(RELINK, before, linkname=relinks[ref])
                out_size += rec.hsize + 512
            else:
                jops[o] = Op(COPY, before) if before else _COPY
                out_size += rec.hsize + _padded(rec.size)

    first = indexes[k].compression
    target = first if options.compression == KEEP else options.compression
    tar_in = sum(indexes[j].tar_size for j in group)
    return OutputLayer(group, REBUILD, target, sum(sizes[j] for j in group), tar_in,
                       out_size, removed, preamble, ops,
                       [("opaque " if op else "") + p for p, op in whiteouts],
                       reason="merged" if len(group) > 1 else "stripped")


_COPY = Op(COPY)


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


def _padded(size: int) -> int:
    return (size + 511) & ~511


def removable_bytes(sizes: Sequence[int], media_types: Sequence[str],
                    indexes: Mapping[int, LayerIndex], matcher: Any, config: Any | None,
                    options: PlanOptions) -> int:
    """Uncompressed file bytes ``matcher`` would remove from the image (for "what if" reports)."""
    n = len(sizes)
    recs = [indexes[i].entries for i in range(n)]
    kept = {i for i in range(n)
            if media_types[i] in _FOREIGN or (options.keep_base and i < options.base)}
    walk = _global_walk(recs)
    protected = protected_paths(walk.final, recs, config) if config is not None else set()
    dropped, _, _ = _strip_decisions(walk, recs, kept, matcher, protected)
    return sum(recs[j][o].size for (j, o) in dropped if recs[j][o].kind == FILE)
