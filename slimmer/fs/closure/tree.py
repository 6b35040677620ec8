"""The final tree as the closure sees it: what a path resolves to (symlinks followed at every
component, as the kernel does), directory listings, and the scan's facts of a file."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from slimmer.fs.closure.facts import Facts
from slimmer.fs.index import Rec
from slimmer.fs.stack import Stack
from slimmer.oci.layer import DIR, HARDLINK, SYMLINK

MAX_HOPS = 40  # the kernel's limit on symlinks followed in one lookup


@dataclass
class Resolved:
    """Where a path leads: ``path`` (None if nothing is there), the symlinks passed on the way
    in order (``symlinks``: those that were the last component, each leading to the next;
    ``dir_links``: symlinked directories passed through), and ``loop`` when the lookup went
    round in circles."""

    path: str | None
    symlinks: list[str] = field(default_factory=list)
    dir_links: list[str] = field(default_factory=list)
    loop: bool = False


def norm(path: str) -> str:
    """Root-relative normal form of an absolute or relative image path ('' is the root)."""
    return posixpath.normpath("/" + path).lstrip("/")


class Tree:
    """Read-only view of the final tree of a layer stack and of the facts collected by the
    scan (``facts[layer][ordinal]``)."""

    def __init__(self, stack: Stack, recs: Sequence[Sequence[Rec]],
                 facts: Sequence[Mapping[int, Facts]]) -> None:
        self.stack = stack
        self.final = stack.final
        self.recs = recs
        self.facts = facts
        self._cache: dict[str, Resolved] = {}

    def rec(self, path: str) -> Rec | None:
        """The final entry at exactly ``path`` (no symlink followed)."""
        ref = self.final.get(path)
        return None if ref is None else self.recs[ref[0]][ref[1]]

    def is_dir(self, path: str) -> bool:
        """True if ``path`` (already resolved) is a directory, explicit or implicit."""
        if path == "":
            return True
        ref = self.final.get(path)
        if ref is not None:
            return self.recs[ref[0]][ref[1]].kind == DIR
        return bool(self.final.children.get(path))

    def exists(self, path: str) -> bool:
        return path == "" or path in self.final.entries or bool(self.final.children.get(path))

    def children(self, path: str) -> list[str]:
        """Paths directly below the (resolved) directory ``path``, sorted."""
        return sorted(self.final.children.get(path, ()))

    def facts_of(self, path: str) -> Facts | None:
        """The scan's facts of the file at ``path`` (for a hardlink: of the file it links to)."""
        ref = self.final.get(path)
        if ref is None:
            return None
        ref = self.stack.data_ref(ref)
        return self.facts[ref[0]].get(ref[1])

    def hardlink_target(self, path: str) -> str | None:
        """The linkname of a hardlink entry at ``path``."""
        rec = self.rec(path)
        return rec.linkname if rec is not None and rec.kind == HARDLINK else None

    def resolve(self, path: str) -> Resolved:
        """Follow ``path`` (absolute, or root-relative) through every symlink; ".." is taken
        where it stands, after the symlinks before it (as the kernel does), not lexically."""
        key = path.lstrip("/")
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._resolve(key)
        return hit

    def _resolve(self, path: str) -> Resolved:
        parts = [p for p in path.split("/") if p and p != "."]
        cur: list[str] = []
        out = Resolved(None)
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if cur:
                    cur.pop()
                continue
            cand = "/".join(cur + [part])
            rec = self.rec(cand)
            if rec is None:
                if not self.final.children.get(cand):
                    return out
                cur.append(part)
                continue
            if rec.kind == SYMLINK:
                hops += 1
                if hops > MAX_HOPS:
                    out.loop = True
                    return out
                hops_list = out.dir_links if parts else out.symlinks
                if cand not in hops_list:
                    hops_list.append(cand)
                target = rec.linkname
                parts = [p for p in target.split("/") if p and p != "."] + parts
                cur = [] if target.startswith("/") else cur
                continue
            if parts and rec.kind != DIR:
                return out   # a file in the middle of a path
            cur.append(part)
        out.path = "/".join(cur)
        return out
