"""Random layer stacks for property tests (hypothesis): entries over a few overlapping paths,
in the spec format of ``support.memimage.make_tar``, checked against its reference model."""

from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st

NAMES = ["a", "b", "c", "a/x", "a/y", "b/z", "a/x/deep", "c/q"]


@st.composite
def layer_specs(draw: st.DrawFn, file_modes: Sequence[int] = (),
                dir_modes: Sequence[int] = (0o755, 0o700),
                extra_targets: Sequence[str] = ()) -> list[tuple]:
    """One layer: up to six entries (file, dir, symlink, whiteout, opaque dir, hardlink to a
    file of the same layer), each path at most once. ``file_modes``: draw file modes too;
    ``extra_targets``: symlink targets besides NAMES (absolute, climbing out)."""
    specs: list[tuple] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 6))):
        path = draw(st.sampled_from(NAMES))
        kind = draw(st.sampled_from(["file", "dir", "symlink", "whiteout", "opaque", "hardlink"]))
        if path in used:
            continue
        used.add(path)
        if kind == "file":
            data = draw(st.binary(max_size=40))
            specs.append(("file", path, data, draw(st.sampled_from(list(file_modes))))
                         if file_modes else ("file", path, data))
        elif kind == "dir":
            specs.append(("dir", path, draw(st.sampled_from(list(dir_modes)))))
        elif kind == "symlink":
            specs.append(("symlink", path, draw(st.sampled_from(NAMES + list(extra_targets)))))
        elif kind == "whiteout":
            specs.append(("whiteout", path))
        elif kind == "opaque":
            specs.append(("dir", path))
            specs.append(("opaque", path))
        else:
            files = [s[1] for s in specs if s[0] == "file"]
            if files:
                specs.append(("hardlink", path, draw(st.sampled_from(files))))
    return specs
