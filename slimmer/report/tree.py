"""The report's file tree: the input's final filesystem by directory, bytes split by what
happens to them (their *fate*), with small entries folded into one ``rest`` node per directory
so that an image of a hundred thousand files gives a tree of a few thousand nodes.

Pure data (JSON-ready dicts, schema in README "Report JSON"); the HTML report draws it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Iterable

#: The cut is the image's bytes divided by this: entries smaller than 1/TREE_NODES of the
#: whole are folded into their directory's ``rest`` node.
TREE_NODES = 2000


class Fate(StrEnum):
    """What happens to a file's bytes. Removed files carry their profile:
    ``removed:PROFILE`` (see ``removed_fate``)."""

    KEPT = "kept"
    PROTECTED = "protected"     # a strip rule matched, a keep rule or the static closure won
    SHADOWED = "shadowed"       # removed, but not visible in the input anyway
    REMOVED = "removed"


class NodeKind(StrEnum):
    """A tree node: a directory, a file at least as big as the cut, or the rest of a
    directory (its entries below the cut, taken together)."""

    DIR = "dir"
    FILE = "file"
    REST = "rest"


def removed_fate(profile: str) -> str:
    """The fate of bytes a profile removes."""
    return f"{Fate.REMOVED}:{profile}"


def profile_of(rule: str) -> str:
    """The profile a rule id belongs to (``docs.man`` -> ``docs``)."""
    return rule.split(".", 1)[0]


class _Dir:
    """A directory while the tree is built: subdirectories, files, totals."""

    __slots__ = ("dirs", "files", "size", "count", "fates")

    def __init__(self) -> None:
        self.dirs: dict[str, _Dir] = {}
        self.files: list[tuple[str, int, str]] = []
        self.size = 0
        self.count = 0
        self.fates: dict[str, int] = {}


def build_tree(files: Iterable[tuple[str, int, str]], cut: int | None = None) -> dict[str, Any]:
    """The tree of ``files`` (path, bytes, fate); a path may come twice with two fates (a
    visible file and an older, shadowed copy). ``cut`` defaults to the total / TREE_NODES."""
    root = _Dir()
    counts: dict[str, int] = {}
    for path, size, fate in files:
        node = root
        parts = path.split("/")
        for part in parts[:-1]:
            sub = node.dirs.get(part)
            if sub is None:
                sub = node.dirs[part] = _Dir()
            node = sub
        node.files.append((parts[-1], size, fate))
        counts[fate] = counts.get(fate, 0) + 1
    _total(root)
    if cut is None:
        cut = root.size // TREE_NODES
    cut = max(1, cut)
    return {"cut": cut, "files": dict(sorted(counts.items())),
            "bytes": dict(sorted(root.fates.items())), "root": _emit("", root, cut)}


def _total(top: _Dir) -> None:
    """Fill in sizes, counts and fates bottom-up (iteratively: trees can be deep)."""
    order: list[_Dir] = []
    stack = [top]
    while stack:
        d = stack.pop()
        order.append(d)
        stack.extend(d.dirs.values())
    for d in reversed(order):
        for _, size, fate in d.files:
            d.size += size
            d.count += 1
            d.fates[fate] = d.fates.get(fate, 0) + size
        for sub in d.dirs.values():
            d.size += sub.size
            d.count += sub.count
            for fate, size in sub.fates.items():
                d.fates[fate] = d.fates.get(fate, 0) + size


def _node(kind: NodeKind, name: str, size: int, count: int,
          fates: dict[str, int]) -> dict[str, Any]:
    return {"kind": kind.value, "name": name, "size": size, "files": count,
            "fates": {f: b for f, b in sorted(fates.items()) if b}}


def _emit(name: str, top: _Dir, cut: int) -> dict[str, Any]:
    """The JSON node of directory ``top``: big children in full, small ones as one rest node
    per directory (iteratively: trees can be deep)."""
    root = _node(NodeKind.DIR, name, top.size, top.count, top.fates)
    made = [root]
    stack = [(top, root)]
    while stack:
        d, out = stack.pop()
        children: list[dict[str, Any]] = []
        rest_size = rest_count = 0
        rest_fates: dict[str, int] = {}
        for sub_name, sub in d.dirs.items():
            if sub.size >= cut:
                child = _node(NodeKind.DIR, sub_name, sub.size, sub.count, sub.fates)
                children.append(child)
                made.append(child)
                stack.append((sub, child))
                continue
            rest_size += sub.size
            rest_count += sub.count
            for fate, size in sub.fates.items():
                rest_fates[fate] = rest_fates.get(fate, 0) + size
        for file_name, size, fate in d.files:
            if size >= cut:
                children.append(_node(NodeKind.FILE, file_name, size, 1, {fate: size}))
                continue
            rest_size += size
            rest_count += 1
            rest_fates[fate] = rest_fates.get(fate, 0) + size
        if rest_count:
            children.append(_node(NodeKind.REST, "", rest_size, rest_count, rest_fates))
        out["children"] = children
    for node in made:
        node["children"].sort(key=lambda c: (-c["size"], c["kind"], c["name"]))
    return root


def walk(node: dict[str, Any], path: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    """Every node of a tree with its path (the root's path is '')."""
    stack = [(path, node)]
    while stack:
        p, n = stack.pop()
        yield p, n
        for child in reversed(n.get("children", ())):
            name = child["name"]
            stack.append((f"{p}/{name}" if p else name, child))
