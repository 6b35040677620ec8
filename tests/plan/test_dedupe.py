"""--dedupe: identical files of one output layer become one file and hardlinks to it (checked
against the reference model of layer application), and what stays duplicated across layers."""

from __future__ import annotations

import io
import tarfile

import pytest

from slimmer.plan.model import LINK, PASSTHROUGH, REBUILD, LayerReason, PlanOptions

from support.memimage import final_fs, make_tar
from support.slimrun import run

MIN = 1024
LIB = b"\x7fELF" + bytes(range(256)) * 16          # 4 KiB, above MIN
OTHER = b"\x7fELF" + bytes(range(255, -1, -1)) * 16  # same size, other content
SMALL = b"tiny" * 10


def dedupe(**kw: object) -> PlanOptions:
    return PlanOptions(**{"compression": "gzip", "dedupe": True, "dedupe_min_size": MIN,
                          **kw})  # type: ignore[arg-type]


def tar_members(tar: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_identical_files_in_one_layer_become_hardlinks() -> None:
    tars = [make_tar([("dir", "venv1"), ("file", "venv1/libx.so", LIB, 0o755),
                      ("dir", "venv2"), ("file", "venv2/libx.so", LIB, 0o755),
                      ("file", "venv2/liby.so", LIB, 0o755),
                      ("file", "venv2/other.so", OTHER, 0o755),
                      ("file", "a.txt", SMALL), ("file", "b.txt", SMALL)])]
    sink, plan = run(tars, dedupe())
    (layer,) = plan.layers
    assert layer.mode == REBUILD and layer.reason == LayerReason.DEDUPED
    assert [(g.size, g.paths) for g in layer.deduped] == [
        (len(LIB), ("venv1/libx.so", "venv2/libx.so", "venv2/liby.so"))]
    assert layer.deduped_bytes == 2 * len(LIB)
    (out,) = sink.layer_tars()
    members = tar_members(out)
    assert members["venv1/libx.so"].isreg()
    for name in ("venv2/libx.so", "venv2/liby.so"):
        assert members[name].islnk() and members[name].linkname == "venv1/libx.so"
    assert members["venv2/other.so"].isreg() and members["b.txt"].isreg()   # other / small
    assert final_fs([out]) == final_fs(tars)
    assert len(out) <= len(tars[0]) - 2 * len(LIB)
    assert plan.cross_layer == []


@pytest.mark.parametrize("twin", [
    ("file", "b/lib.so", LIB, 0o644),                                    # other mode
    ("file", "b/lib.so", LIB, 0o755, {"uid": "1000"}),                   # other owner
    ("file", "b/lib.so", LIB, 0o755, {"gid": "50"}),
    ("file", "b/lib.so", LIB, 0o755, {"SCHILY.xattr.user.tag": "x"}),    # other xattrs
], ids=["mode", "uid", "gid", "xattr"])
def test_files_differing_in_more_than_content_stay_apart(twin: tuple) -> None:
    tars = [make_tar([("file", "a/lib.so", LIB, 0o755), twin])]
    sink, plan = run(tars, dedupe())
    assert plan.layers[0].mode == PASSTHROUGH and not plan.layers[0].deduped
    assert sink.layer_tars() == tars


def test_equal_xattrs_do_not_prevent_dedupe() -> None:
    x = {"SCHILY.xattr.user.tag": "same"}
    tars = [make_tar([("file", "a/lib.so", LIB, 0o755, x), ("file", "b/lib.so", LIB, 0o755, x)])]
    sink, plan = run(tars, dedupe())
    assert plan.layers[0].deduped[0].paths == ("a/lib.so", "b/lib.so")
    assert final_fs(sink.layer_tars()) == final_fs(tars)


def test_threshold_and_off_switch() -> None:
    tars = [make_tar([("file", "a", LIB), ("file", "b", LIB)])]
    sink, plan = run(tars, dedupe(dedupe_min_size=len(LIB) + 1))
    assert plan.layers[0].mode == PASSTHROUGH
    sink, plan = run(tars, PlanOptions(compression="gzip"))
    assert plan.layers[0].mode == PASSTHROUGH and plan.cross_layer is None
    sink, plan = run(tars, dedupe(dedupe_min_size=len(LIB)))
    assert plan.layers[0].deduped


def test_copies_in_merged_layers_become_one_and_links_stay_valid() -> None:
    tars = [make_tar([("dir", "usr"), ("file", "usr/lib.so", LIB),
                      ("hardlink", "usr/lib-alias.so", "usr/lib.so")]),
            make_tar([("dir", "opt"), ("file", "opt/lib.so", LIB),
                      ("hardlink", "opt/lib.so.1", "opt/lib.so"), ("file", "opt/x", OTHER)])]
    sink, plan = run(tars, dedupe(merge="all"))
    (layer,) = plan.layers
    assert layer.deduped[0].paths == ("usr/lib.so", "opt/lib.so")
    assert layer.ops[1][1].action == LINK
    (out,) = sink.layer_tars()
    assert final_fs([out]) == final_fs(tars)
    members = tar_members(out)
    names = list(members)
    assert names.index("usr/lib.so") < names.index("opt/lib.so") < names.index("opt/lib.so.1")


def test_copies_in_different_output_layers_are_reported_not_merged() -> None:
    tars = [make_tar([("file", "usr/lib.so", LIB), ("file", "usr/keep", OTHER)]),
            make_tar([("file", "opt/lib.so", LIB), ("file", "opt/lib2.so", LIB)]),
            make_tar([("file", "srv/lib.so", LIB)])]
    sink, plan = run(tars, dedupe(merge="none"))
    assert plan.layers[0].mode == PASSTHROUGH            # nothing to do inside layer 0
    assert plan.layers[1].deduped[0].paths == ("opt/lib.so", "opt/lib2.so")
    assert plan.layers[2].mode == PASSTHROUGH
    assert sink.layer_tars()[0] == tars[0] and sink.layer_tars()[2] == tars[2]
    (cross,) = plan.cross_layer
    assert cross.paths == ("usr/lib.so", "opt/lib.so", "opt/lib2.so", "srv/lib.so")
    assert cross.layers == (0, 1, 1, 2) and cross.extra == 2 * len(LIB)
    assert final_fs(sink.layer_tars()) == final_fs(tars)


def test_shadowed_and_stripped_copies_do_not_count_across_layers() -> None:
    from slimmer.profiles import Matcher
    tars = [make_tar([("file", "a/lib.so", LIB), ("file", "b/lib.so", LIB)]),
            make_tar([("whiteout", "a/lib.so"), ("file", "c/lib.so", LIB)])]
    _, plan = run(tars, dedupe(merge="none"), Matcher([], strip_globs=["/c/lib.so"]))
    assert plan.cross_layer == []


def test_base_layers_stay_byte_identical_unless_rebuilt_anyway() -> None:
    from slimmer.profiles import Matcher
    tars = [make_tar([("file", "a/lib.so", LIB), ("file", "b/lib.so", LIB),
                      ("file", "tmp/junk", SMALL)]),
            make_tar([("file", "app", SMALL)])]
    sink, plan = run(tars, dedupe(merge="none", base=1))
    assert plan.layers[0].mode == PASSTHROUGH and sink.layer_tars()[0] == tars[0]
    sink, plan = run(tars, dedupe(merge="none", base=1), Matcher([], strip_globs=["/tmp/**"]))
    assert plan.layers[0].mode == REBUILD and plan.layers[0].reason == LayerReason.STRIPPED
    assert plan.layers[0].deduped[0].paths == ("a/lib.so", "b/lib.so")
    fs = final_fs(sink.layer_tars())
    assert fs["b/lib.so"] == fs["a/lib.so"] and "tmp/junk" not in fs


def test_later_copy_overwritten_in_the_same_run_is_not_a_twin() -> None:
    tars = [make_tar([("file", "a/lib.so", LIB), ("file", "b/lib.so", LIB)]),
            make_tar([("file", "b/lib.so", OTHER)])]
    sink, plan = run(tars, dedupe(merge="all"))
    assert not plan.layers[0].deduped
    assert final_fs(sink.layer_tars()) == final_fs(tars)


def test_estimate_matches_the_written_tar() -> None:
    from slimmer.build.estimate import estimate_tar_size
    from slimmer.fs.scan import scan_layer

    from support.memimage import MemSource
    # exact for links to short targets and for short-named links to long ones; a long-named
    # link to a long target may share its PAX block: then a block too much
    for first, slack in (("a/lib.so", 0), ("a/" + "x" * 120 + ".so", 512)):
        tars = [make_tar([("file", first, LIB), ("file", "b/lib.so", LIB),
                          ("file", "c/" + "long" * 40 + ".so", LIB)])]
        sink, plan = run(tars, dedupe())
        indexes = {0: scan_layer(MemSource(tars).image.layers[0], hash_min=MIN)}
        (out,) = sink.layer_tars()
        estimate = estimate_tar_size(plan.layers[0], indexes)
        assert estimate is not None and 0 <= estimate - len(out) <= slack, first
