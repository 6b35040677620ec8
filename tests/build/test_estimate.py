"""What ``analyze`` says a rebuilt layer's tar will be, against what ``push`` then writes."""

from __future__ import annotations

from pathlib import Path

import pytest

import slimmer
from slimmer import SlimOptions

from support import REPO

EXAMPLE = f"oci:{REPO / 'testdata' / 'example'}"


@pytest.mark.parametrize("options", [
    SlimOptions(),
    SlimOptions(profiles=("compilers,caches,docs,model-weights",)),
    SlimOptions(profiles=("none",), merge="all"),
    SlimOptions(profiles=("compilers",), merge="none", base=1),
    SlimOptions(strip=("/usr/bin/gcc-12",), merge="none"),   # its hard link becomes the file
], ids=["default", "ml", "merge-all", "no-merge", "hardlink-target-stripped"])
def test_analyze_estimates_the_tar_that_push_writes(tmp_path: Path,
                                                    options: SlimOptions) -> None:
    planned = slimmer.analyze(EXAMPLE, options)
    pushed = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'out'}:slim", options)
    for before, after in zip(planned.images[0].layers, pushed.images[0].layers):
        assert before.mode == after.mode and before.inputs == after.inputs
        assert before.tar_after is not None and after.tar_after is not None
        # Exact, except a renamed hard-link target may gain a PAX header: a block either way.
        assert abs(before.tar_after - after.tar_after) <= 512, (before, after)
    exact = [b.tar_after == a.tar_after
             for b, a in zip(planned.images[0].layers, pushed.images[0].layers)]
    assert sum(exact) >= len(exact) - 1
