"""Strip decisions: which entries of which layers go, by which rule, and which matches were
overruled. Decided on the final tree first (a directory goes only when all of it goes), then
extended to the older copies that later layers shadow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from slimmer.fs.closure import Closure
from slimmer.fs.index import UNMATCHED, Rec
from slimmer.fs.overlay import Ref, ancestors
from slimmer.fs.stack import Stack
from slimmer.globs import Glob
from slimmer.oci.layer import DIR, HARDLINK, META, OPAQUE, WHITEOUT
from slimmer.plan.model import Forced, Override, OverrideKind
from slimmer.profiles import Match, Matcher


@dataclass
class StripDecisions:
    """``dropped``: entry -> rule id; ``stripped``: final-tree path -> rule id; ``overrides``:
    matches that a keep rule or the image's needs overruled, sorted by path; ``forced``:
    needed paths removed because --no-protect says so."""

    dropped: dict[Ref, str] = field(default_factory=dict)
    stripped: dict[str, str] = field(default_factory=dict)
    overrides: list[Override] = field(default_factory=list)
    #: Directory entries a strip rule selects (whether or not they go): a rebuilt single
    #: layer writes them lazily, just before the first entry below them that stays.
    matched_dirs: set[Ref] = field(default_factory=set)
    forced: list[Forced] = field(default_factory=list)


class _Decider:
    """Matches entries of the stack against the rules."""

    def __init__(self, stack: Stack, recs: Sequence[Sequence[Rec]], kept: set[int],
                 matcher: Matcher, closure: Closure, no_protect: Sequence[Glob],
                 matched_by: Sequence[object] = ()) -> None:
        self.stack = stack
        # per layer: whether its Rec.matched hold this matcher's matches (the scan's)
        self.reuse = [m is matcher for m in matched_by] or [False] * len(recs)
        self.recs = recs
        self.kept = kept
        self.matcher = matcher
        self.closure = closure
        self.no_protect = no_protect
        self.out = StripDecisions()

    def protected(self, path: str, rule: str | None = None) -> bool:
        """True if the closure keeps ``path``; a --no-protect match lifts that (and, when the
        final-tree ``rule`` removes it, is recorded as forced)."""
        if path not in self.closure:
            return False
        glob = next((g for g in self.no_protect if g.matches("/" + path)), None)
        if glob is None:
            return True
        if rule is not None:
            self.out.forced.append(Forced(path, rule, glob.pattern,
                                          tuple(self.closure.chain(path))))
        return False

    def match(self, path: str, rec: Rec, ref: Ref) -> Match | None:
        """The rule match of an entry; a hardlink is judged by the file it links to."""
        if rec.kind == HARDLINK:
            src = self.stack.data_ref(ref)
            data = self.recs[src[0]][src[1]]
        else:
            if self.reuse[ref[0]] and rec.matched is not UNMATCHED and path == rec.path:
                return rec.matched  # type: ignore[return-value]
            data = rec
        return self.matcher.match("/" + path, rec.kind, data.size, data.content)

    def final_tree(self) -> None:
        """Files first, then directories bottom-up: a directory goes only if all of it goes."""
        final, out = self.stack.final, self.out
        dirs: list[str] = []
        for path, ref in final.entries.items():
            if ref[0] in self.kept or not path:
                continue
            rec = self.recs[ref[0]][ref[1]]
            if rec.kind == DIR:
                dirs.append(path)
                continue
            m = self.match(path, rec, ref)
            if m is None:
                continue
            if m.kept_by is not None:
                out.overrides.append(Override(path, m.rule.id, OverrideKind.KEEP_RULE,
                                              m.kept_by.id))
            elif self.protected(path, m.rule.id):
                out.overrides.append(Override(path, m.rule.id, OverrideKind.PROTECTED,
                                              chain=tuple(self.closure.chain(path))))
            else:
                out.stripped[path] = m.rule.id
        for path in sorted(dirs, key=lambda p: -p.count("/")):
            ref = final.entries[path]
            m = self.match(path, self.recs[ref[0]][ref[1]], ref)
            if m is None or m.kept_by is not None:
                continue
            if not all(d in out.stripped for d in final.descendants(path) if d in final.entries):
                continue
            if not self.protected(path, m.rule.id):
                out.stripped[path] = m.rule.id
        for path, rule in out.stripped.items():
            out.dropped[final.entries[path]] = rule

    def dirs(self) -> None:
        for j, layer in enumerate(self.recs):
            if j in self.kept:
                continue
            for o, rec in enumerate(layer):
                if rec.kind == DIR and rec.path:
                    m = self.match(rec.path, rec, (j, o))
                    if m is not None and m.kept_by is None:
                        self.out.matched_dirs.add((j, o))

    def shadowed(self) -> None:
        """Entries not in the final tree go with the path that replaced them, with a stripped
        directory above them, or when a rule matches them."""
        out, final = self.out, self.stack.final
        stripped_dirs = {p for p in out.stripped if final.is_dir[p]}
        for j, layer in enumerate(self.recs):
            if j in self.kept:
                continue
            for o, rec in enumerate(layer):
                ref = (j, o)
                if rec.kind in (WHITEOUT, OPAQUE, META) or ref in self.stack.final_refs:
                    continue
                if rec.path in out.stripped:
                    out.dropped[ref] = out.stripped[rec.path]
                    continue
                gone_dir = next((a for a in ancestors(rec.path) if a in stripped_dirs), None)
                if gone_dir is not None:
                    out.dropped[ref] = out.stripped[gone_dir]
                    continue
                if rec.kind == DIR:
                    continue
                m = self.match(rec.path, rec, ref)
                if m is not None and m.kept_by is None and not self.protected(rec.path):
                    out.dropped[ref] = m.rule.id


def decide_strips(stack: Stack, recs: Sequence[Sequence[Rec]], kept: set[int],
                  matcher: Matcher | None, closure: Closure,
                  no_protect: Sequence[Glob] = (),
                  matched_by: Sequence[object] = ()) -> StripDecisions:
    """What the rules remove from the stack; nothing without a matcher. Entries of ``kept``
    layers and paths of the ``closure`` are never removed, unless a ``no_protect`` glob
    matches them: the closure wins over every strip rule, --no-protect over the closure.
    ``matched_by``: per layer, the matcher whose matches its entries carry (``Rec.matched``)."""
    if matcher is None:
        return StripDecisions()
    decider = _Decider(stack, recs, kept, matcher, closure, no_protect, matched_by)
    decider.final_tree()
    decider.shadowed()
    decider.dirs()
    decider.out.overrides.sort(key=lambda o: o.path)
    decider.out.forced.sort(key=lambda f: f.path)
    return decider.out
