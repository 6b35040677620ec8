"""Random layer stacks for property tests: a few names, every entry kind a layer can hold."""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = ["a", "b", "c", "a/x", "a/y", "b/z", "a/x/deep", "c/q"]


@st.composite
def layer_specs(draw: st.DrawFn) -> list[tuple]:
    specs: list[tuple] = []
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 6))):
        path = draw(st.sampled_from(NAMES))
        kind = draw(st.sampled_from(["file", "dir", "symlink", "whiteout", "opaque", "hardlink"]))
        if path in used:
            continue
        used.add(path)
        if kind == "file":
            specs.append(("file", path, draw(st.binary(max_size=40))))
        elif kind == "dir":
            specs.append(("dir", path, draw(st.sampled_from([0o755, 0o700]))))
        elif kind == "symlink":
            specs.append(("symlink", path, draw(st.sampled_from(NAMES))))
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
