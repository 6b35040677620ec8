"""Union-filesystem semantics of a layer stack, as data: which entry a path resolves to.

Applying a layer: its whiteouts and opaque markers first (they hide *lower* content only), then
its entries in archive order; a non-directory replacing anything removes the old subtree, a
directory over a directory keeps the children.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from slimmer.fs.index import Rec
from slimmer.oci.layer import DIR, META, OPAQUE, WHITEOUT

Ref = tuple[int, int]  # (input layer index, entry ordinal)


def parent_of(path: str) -> str:
    """Parent path ('' is the root)."""
    return path.rpartition("/")[0]


def ancestors(path: str) -> list[str]:
    """Ancestor directories of ``path``, root first, excluding the root itself and ``path``."""
    out = []
    end = path.find("/")
    while end > 0:
        out.append(path[:end])
        end = path.find("/", end + 1)
    return out


def add_ancestors(path: str, into: set[str]) -> None:
    """Add the ancestor directories of ``path`` to ``into``, stopping at the first one that
    is there already (its own ancestors were added with it): linear over a layer."""
    p = path.rpartition("/")[0]
    while p and p not in into:
        into.add(p)
        p = p.rpartition("/")[0]


class Overlay:
    """Path -> (layer, ordinal) of the entry currently visible there, with a children index."""

    def __init__(self) -> None:
        self.entries: dict[str, Ref] = {}
        self.is_dir: dict[str, bool] = {}
        self.children: dict[str, set[str]] = {}

    def _unlink(self, path: str, removed: list[tuple[str, Ref]] | None) -> None:
        sibs = self.children.get(parent_of(path))
        if sibs is not None:
            sibs.discard(path)
        stack = [path]
        while stack:
            p = stack.pop()
            ref = self.entries.pop(p, None)
            if ref is not None:
                self.is_dir.pop(p, None)
                if removed is not None:
                    removed.append((p, ref))
            kids = self.children.pop(p, None)
            if kids:
                stack.extend(kids)

    def remove(self, path: str, removed: list[tuple[str, Ref]] | None = None) -> None:
        """Remove ``path`` and everything below it."""
        self._unlink(path, removed)

    def remove_children(self, path: str, removed: list[tuple[str, Ref]] | None = None) -> None:
        """Remove everything strictly below ``path``."""
        for kid in list(self.children.get(path, ())):
            self._unlink(kid, removed)

    def put(self, path: str, ref: Ref, is_dir: bool,
            removed: list[tuple[str, Ref]] | None = None) -> bool:
        """Make ``path`` resolve to ``ref``; True if it replaced a subtree (non-dir over dir...)."""
        old = self.entries.get(path)
        replaced = False
        if old is not None:
            if self.is_dir[path] and is_dir:
                if removed is not None:
                    removed.append((path, old))
            else:
                self._unlink(path, removed)
                replaced = True
        elif not is_dir and self.children.get(path):
            self._unlink(path, removed)  # implicit directory replaced by a non-directory
            replaced = True
        self.entries[path] = ref
        self.is_dir[path] = is_dir
        p = path
        children = self.children
        while p:  # link the path, and any implicit parent directories, into the tree
            par = p.rpartition("/")[0]
            sibs = children.get(par)
            if sibs is None:
                children[par] = sibs = set()
            elif p in sibs:
                break
            sibs.add(p)
            p = par
        return replaced

    def get(self, path: str) -> Ref | None:
        return self.entries.get(path)

    def descendants(self, path: str) -> Iterator[str]:
        """Paths below ``path``, implicit directories (no entry of their own) included."""
        stack = list(self.children.get(path, ()))
        while stack:
            p = stack.pop()
            yield p
            stack.extend(self.children.get(p, ()))


def apply_layer(overlay: Overlay, j: int, recs: Sequence[Rec],
                on_delete: Callable[[str, str], None] | None = None,
                on_entry: Callable[[int, Rec], None] | None = None,
                removed: list[tuple[str, Ref]] | None = None) -> None:
    """Apply input layer ``j`` to ``overlay``.

    ``on_delete(kind, path)`` is called for each whiteout ("whiteout") and opaque marker
    ("opaque") and each non-directory entry ("replace": whatever lower layers had at that path
    is gone); ``on_entry(o, rec)`` is
    called for each regular entry just before it is applied (link resolution needs that moment).
    """
    for rec in recs:
        if rec.kind == OPAQUE:
            overlay.remove_children(rec.target, removed)
            if on_delete:
                on_delete("opaque", rec.target)
        elif rec.kind == WHITEOUT:
            overlay.remove(rec.target, removed)
            if on_delete:
                on_delete("whiteout", rec.target)
    for o, rec in enumerate(recs):
        if rec.kind in (OPAQUE, WHITEOUT, META):
            continue
        if on_entry:
            on_entry(o, rec)
        is_dir = rec.kind == DIR
        overlay.put(rec.path, (j, o), is_dir, removed)
        if on_delete and not is_dir:
            on_delete("replace", rec.path)
