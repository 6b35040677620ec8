"""Why one path is kept or removed (``slim analyze --why PATH``): the rule that removes it,
the keep rule or closure chain that overrules a rule, or that nothing matches it."""

from __future__ import annotations

from typing import Any, Sequence

from slimmer.fs.closure import Closure
from slimmer.fs.closure.tree import Tree, norm
from slimmer.fs.index import Rec
from slimmer.fs.stack import Stack
from slimmer.oci.layer import HARDLINK
from slimmer.plan.model import ImagePlan, OverrideKind
from slimmer.plan.strip import StripDecisions
from slimmer.profiles import Matcher


def explain_path(path: str, stack: Stack, recs: Sequence[Sequence[Rec]], kept: set[int],
                 matcher: Matcher | None, strips: StripDecisions, closure: Closure,
                 plan: ImagePlan) -> dict[str, Any]:
    """The fate of ``path`` as data: ``verdict`` (removed | kept | absent), ``rule``,
    ``kept_by``, ``chain``, ``forced_by`` and a one-line ``text``."""
    p = norm(path)
    out: dict[str, Any] = {"path": "/" + p, "verdict": "kept", "rule": None, "kept_by": None,
                           "chain": [], "forced_by": None, "text": ""}
    final = stack.final
    if p not in final.entries and not final.children.get(p):
        res = Tree(stack, recs, [{}] * len(recs)).resolve(p)
        if res.path and res.path != p:
            inner = explain_path(res.path, stack, recs, kept, matcher, strips, closure, plan)
            inner["text"] = f"/{p} resolves to {inner['text']}"
            return {**inner, "path": "/" + p, "resolves_to": "/" + res.path}
        out.update(verdict="absent", text=f"/{p}: not in the image")
        return out
    ref = final.entries.get(p)
    chain = closure.chain(p) if p in closure else []
    needed = f"the image needs it: {' <- '.join(chain)}" if chain else ""
    override = next((o for o in plan.overrides if o.path == p), None)
    forced = next((f for f in strips.forced if f.path == p), None)
    if p in strips.stripped:
        rule = strips.stripped[p]
        out.update(verdict="removed", rule=rule, text=f"/{p}: removed by rule {rule}")
        if forced is not None:
            out.update(chain=list(forced.chain), forced_by=forced.pattern,
                       text=f"/{p}: removed by rule {rule} although {needed} "
                            f"(--no-protect {forced.pattern})")
        return out
    out["chain"] = chain
    if ref is not None and ref[0] in kept:
        out["text"] = f"/{p}: kept: layer {ref[0]} is passed through unchanged"
    elif override is not None and override.kind == OverrideKind.KEEP_RULE:
        out.update(rule=override.rule, kept_by=override.kept_by,
                   text=f"/{p}: kept by keep rule {override.kept_by} (rule {override.rule} "
                        "matches it)")
    elif override is not None:
        out.update(rule=override.rule,
                   text=f"/{p}: kept: rule {override.rule} matches it, but {needed}")
    else:
        match = _match(p, ref, stack, recs, matcher) if ref is not None else None
        if match is not None:
            out["rule"] = match
            out["text"] = (f"/{p}: kept: rule {match} matches this directory, but not "
                           "everything below it is removed")
        else:
            out["text"] = f"/{p}: kept: no rule matches it" + (f"; {needed}" if needed else "")
    return out


def _match(path: str, ref: tuple[int, int], stack: Stack, recs: Sequence[Sequence[Rec]],
           matcher: Matcher | None) -> str | None:
    if matcher is None:
        return None
    rec = recs[ref[0]][ref[1]]
    data = rec
    if rec.kind == HARDLINK:
        src = stack.data_ref(ref)
        data = recs[src[0]][src[1]]
    m = matcher.match("/" + path, rec.kind, data.size, data.content)
    return m.rule.id if m is not None and m.kept_by is None else None
