"""The report's file tree: fates add up, small entries fold into one rest node per directory,
big images stay small, and the tree is built from the plan's final tree."""

from __future__ import annotations

import random
from pathlib import Path

from slimmer.report.tree import Fate, NodeKind, build_tree, removed_fate, walk

from support.layoututil import make_image, tagged, write_layout


def _by_path(tree: dict) -> dict[str, dict]:
    return {path: node for path, node in walk(tree["root"])}


def test_fates_add_up_and_small_entries_fold() -> None:
    files = [("usr/bin/python", 6000, Fate.KEPT), ("usr/bin/tiny", 10, Fate.KEPT),
             ("usr/share/doc/a/README", 3000, removed_fate("docs")),
             ("usr/share/doc/a/NEWS", 5, removed_fate("docs")),
             ("var/cache/x.deb", 900, removed_fate("caches")),
             ("var/cache/x.deb", 400, Fate.SHADOWED),          # an older, hidden copy
             ("etc/keep.conf", 20, Fate.PROTECTED)]
    tree = build_tree(files, cut=100)
    nodes = _by_path(tree)
    assert tree["cut"] == 100
    assert tree["bytes"] == {"kept": 6010, "protected": 20, "removed:caches": 900,
                             "removed:docs": 3005, "shadowed": 400}
    assert tree["files"] == {"kept": 2, "protected": 1, "removed:caches": 1, "removed:docs": 2,
                             "shadowed": 1}
    root = tree["root"]
    assert root["size"] == sum(s for _, s, _ in files) and root["files"] == len(files)
    # largest first; etc (20 bytes) is below the cut: folded into the root's rest node
    assert [c["name"] for c in root["children"]] == ["usr", "var", ""]
    assert root["children"][-1] == {"kind": "rest", "name": "", "size": 20, "files": 1,
                                    "fates": {"protected": 20}}
    assert nodes["usr/bin/python"]["kind"] == NodeKind.FILE
    assert nodes["usr/bin"]["children"][-1]["kind"] == NodeKind.REST   # tiny
    # a path with two fates is two file nodes
    cache = nodes["var/cache"]["children"]
    assert [(c["name"], c["fates"]) for c in cache] == [
        ("x.deb", {"removed:caches": 900}), ("x.deb", {"shadowed": 400})]
    for _, node in walk(root):
        assert sum(node["fates"].values()) == node["size"]
        if "children" in node:
            assert sum(c["size"] for c in node["children"]) == node["size"]
            assert sum(c["files"] for c in node["children"]) == node["files"]


def test_default_cut_keeps_a_big_tree_small() -> None:
    rnd = random.Random(7)
    files = [(f"d{rnd.randrange(40)}/s{rnd.randrange(30)}/f{i}", rnd.randrange(1, 50_000),
              Fate.KEPT if i % 3 else removed_fate("docs")) for i in range(50_000)]
    tree = build_tree(files)
    count = sum(1 for _ in walk(tree["root"]))
    assert tree["cut"] == tree["root"]["size"] // 2000
    assert count < 4000, count
    assert tree["root"]["files"] == 50_000


def test_deep_trees_do_not_recurse() -> None:
    deep = "/".join(f"d{i}" for i in range(3000))
    tree = build_tree([(deep + "/leaf", 10, Fate.KEPT)])
    assert sum(1 for _ in walk(tree["root"])) == 3002


def test_empty_tree() -> None:
    tree = build_tree([])
    assert tree["root"] == {"kind": "dir", "name": "", "size": 0, "files": 0, "fates": {},
                            "children": []}
    assert tree["files"] == {} and tree["bytes"] == {}


def test_report_tree_comes_from_the_plan(tmp_path: Path) -> None:
    import slimmer
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, [
        {"usr/share/doc/pkg/README": b"r" * 4000, "var/cache/apt/a.deb": b"old" * 100,
         "app/main.py": b"m" * 9000},
        {"var/cache/apt/a.deb": b"new" * 300, "usr/share/doc/keep/NOTE": b"k" * 50},
    ]), "v1")])
    report = slimmer.analyze(f"oci:{src}:v1", slimmer.SlimOptions(
        keep=("/usr/share/doc/keep/**",)))
    tree = report.images[0].tree
    assert tree is not None
    assert tree["bytes"] == {"kept": 9000, "protected": 50, "removed:caches": 900,
                             "removed:docs": 4000, "shadowed": 300}
    nodes = _by_path(tree)
    assert nodes["usr/share/doc/keep/NOTE"]["fates"] == {"protected": 50}
    # the report round-trips through JSON with its tree
    again = slimmer.report.Report.from_dict(report.to_dict())
    assert again.images[0].tree == tree
