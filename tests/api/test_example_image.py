"""The bundled example image, slimmed with compilers, caches, docs and model-weights: the
result extracts (umoci, after skopeo re-encodes the zstd layers) to the input tree minus exactly
the files the report lists; licences, small .bin files and the entrypoint chain stay."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from slimmer.cli import main

from support import REPO
from support.imagetools import HARDLINKS, missing_tools, snapshot, unpack_tree

EXAMPLE = REPO / "testdata" / "example"
PROFILES = "compilers,caches,docs,model-weights"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(missing_tools("umoci", "skopeo") is not None,
                                 reason=str(missing_tools("umoci", "skopeo")))]


@pytest.fixture(scope="module")
def slimmed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("slim") / "out"
    result = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{out}:latest",
                                       "--profile", PROFILES, "--json", str(out) + ".json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(Path(str(out) + ".json").read_text())


def test_tree_is_input_minus_removed_files(slimmed: tuple[Path, dict], tmp_path: Path) -> None:
    out, report = slimmed
    before = snapshot(unpack_tree(EXAMPLE, "latest", tmp_path / "a"))
    after = snapshot(unpack_tree(out, "latest", tmp_path / "b"))
    removed = {r["path"] for r in report["images"][0]["removed"] if not r["shadowed"]}
    gone = set(before) - set(after) - {HARDLINKS}
    files_gone = {p for p in gone if before[p].type != "dir"}
    assert files_gone == removed
    for p in gone:  # a directory goes only with everything below it
        if before[p].type == "dir":
            assert all(q in gone for q in before if q.startswith(p + "/"))
    for p, entry in after.items():
        if p != HARDLINKS:
            assert entry == before[p], p


def test_expected_paths_removed_and_kept(slimmed: tuple[Path, dict], tmp_path: Path) -> None:
    out, report = slimmed
    after = snapshot(unpack_tree(out, "latest", tmp_path / "b"))
    for gone in ("app/models/model.safetensors", "usr/lib/gcc/x86_64-linux-gnu/12/cc1",
                 "usr/include/stdio.h", "var/cache/apt/pkgcache.bin"):
        assert gone not in after, gone
    for kept in ("app/models/tokenizer.bin", "usr/share/doc/bash/copyright", "app/main.py",
                 "usr/local/bin/python3", "etc/passwd", "tmp"):
        assert kept in after, kept
    assert "app/main.py" in report["images"][0]["protected"]
    assert report["images"][0]["size_after"] < report["images"][0]["size_before"] / 3


def test_skopeo_accepts_the_result(slimmed: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = slimmed
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{out}:latest"], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["Os"] == "linux"
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{out}:latest", f"oci:{tmp_path}/c:x"],
                   check=True, capture_output=True)
    manifest_mt = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{out}:latest"], check=True, capture_output=True,
        text=True).stdout)
    assert all(ly["mediaType"].endswith("+zstd") for ly in manifest_mt["layers"])


def test_analyze_writes_nothing_and_names_other_profiles(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["analyze", f"oci:{EXAMPLE}:latest", "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    img = report["images"][0]
    assert set(img["removed_by_profile"]) <= {"caches", "docs"}
    assert img["other_profiles"]["model-weights"] >= 2 * 1024 * 1024
    assert img["other_profiles"]["compilers"] > 0
    assert report["digest"] is None
