"""The proxy's unpack gives the tree a runtime would: random layer stacks checked against the
independent reference model of layer application, and symlinks never lead out of the root."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimmer.coldstart.extract import Unpacker, remove_tree
from slimmer.errors import LayerError

from support.memimage import apply_tar, make_tar
from support.stacks import layer_specs

AS_ROOT = os.geteuid() == 0


def unpack(root: Path, tars: list[bytes]) -> None:
    unpacker = Unpacker(str(root))
    for n, tar in enumerate(tars):
        unpacker.apply(io.BytesIO(tar), f"layer {n}")


def tree(root: Path) -> dict[str, tuple]:
    """The unpacked tree in the reference model's form: path -> (kind, payload, mode)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            path = os.path.normpath(os.path.join(rel, name))
            full = os.path.join(dirpath, name)
            st_ = os.lstat(full)
            if os.path.islink(full):
                out[path] = ("symlink", os.readlink(full), 0)
            elif os.path.isdir(full):
                out[path] = ("dir", None, st_.st_mode & 0o7777)
            else:
                out[path] = ("file", Path(full).read_bytes(), st_.st_mode & 0o7777)
    return out


def expected_tree(tars: list[bytes]) -> dict[str, tuple]:
    """The reference model, plus what it leaves out: parents a layer does not list exist on
    disk from that layer on (0755, as runtimes create them)."""
    fs: dict[str, tuple] = {}
    for tar in tars:
        apply_tar(fs, tar)
        for path in list(fs):
            parts = path.split("/")
            for i in range(1, len(parts)):
                fs.setdefault("/".join(parts[:i]), ("dir", None, 0o755))
    return fs


def comparable(fs: dict[str, tuple]) -> dict[str, tuple]:
    """Modes are exact only as root (otherwise the unpacker keeps u+rwx on directories)."""
    return fs if AS_ROOT else {p: v[:2] for p, v in fs.items()}


def sorted_layer_specs() -> st.SearchStrategy[list[tuple]]:
    """Random layers as image builders write them: a layer's whiteouts first."""
    return layer_specs(file_modes=(0o644, 0o755, 0o4755), dir_modes=(0o755, 0o700, 0o1777),
                       extra_targets=("/a", "../../b")).map(
        lambda specs: sorted(specs, key=lambda s: s[0] not in ("whiteout", "opaque")))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(sorted_layer_specs(), min_size=1, max_size=5))
def test_random_stacks_unpack_like_the_reference_model(tmp_path: Path,
                                                       stack: list[list[tuple]]) -> None:
    tars = [make_tar(s) for s in stack]
    try:
        expected = expected_tree(tars)
    except AssertionError:
        return  # a stack the model calls invalid (a child below a non-directory)
    root = tmp_path / "rootfs"
    remove_tree(str(root))
    root.mkdir()
    unpack(root, tars)
    assert comparable(tree(root)) == comparable(expected)
    remove_tree(str(root))


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    """``etc -> /outside`` (absolute) and ``up -> ../../..`` lead to the image's root, never
    out of the unpack directory, as a runtime's chroot sees it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "rootfs"
    root.mkdir()
    tars = [make_tar([("dir", "outside"), ("symlink", "etc", str(outside)),
                      ("symlink", "up", "../../.."), ("symlink", "abs", "/")]),
            make_tar([("file", "etc/passwd", b"image"), ("file", "up/escaped", b"no"),
                      ("file", "abs/top", b"top")])]
    unpack(root, tars)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escaped").exists()
    assert (root / "escaped").read_bytes() == b"no"
    assert (root / "top").read_bytes() == b"top"
    # the absolute target is this machine's path, recreated inside the root
    assert (root / str(outside).lstrip("/") / "passwd").read_bytes() == b"image"


def test_opaque_keeps_what_the_same_layer_wrote_below(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    unpack(root, [make_tar([("dir", "d"), ("dir", "d/sub"), ("file", "d/sub/old", b"o"),
                            ("file", "d/gone", b"g")]),
                  make_tar([("file", "d/sub/new", b"n"), ("opaque", "d")])])
    assert sorted(p for p in tree(root)) == ["d", "d/sub", "d/sub/new"]


def test_hardlink_to_a_missing_target_is_a_layer_error(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    with pytest.raises(LayerError, match="hardlink"):
        unpack(root, [make_tar([("hardlink", "b", "a")])])
