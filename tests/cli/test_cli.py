"""The slim command as a user meets it: profiles listing, JSON output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from slimmer.cli import main
from slimmer.units import parse_size

from support import REPO

EXAMPLE = REPO / "testdata" / "example"


def test_profiles_list_and_show() -> None:
    r = CliRunner().invoke(main, ["profiles"])
    assert r.exit_code == 0
    names = [line.split()[0] for line in r.output.splitlines()]
    assert {"caches", "docs", "compilers", "model-weights", "pycache", "locales", "tests"} <= set(names)
    r = CliRunner().invoke(main, ["profiles", "docs"])
    assert r.exit_code == 0 and "/usr/share/doc/**" in r.output and "copyright" in r.output


def test_profiles_unknown_name_is_one_line_exit_1() -> None:
    r = CliRunner().invoke(main, ["profiles", "bogus"])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "unknown profile 'bogus'" in r.output


def test_analyze_json_to_stdout_is_only_json() -> None:
    r = CliRunner().invoke(main, ["analyze", f"oci:{EXAMPLE}:latest", "--json", "-"])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["schema"] == "slimmer.report/v2" and doc["mode"] == "analyze"
    assert doc["images"][0]["tree"]["root"]["kind"] == "dir"


def test_push_prints_report_and_writes_json(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v",
                                  "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert "removed by profile" in r.output and "digest: sha256:" in r.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["digest"] and doc["destination"] == f"oci:{tmp_path}/o:v"


def test_analyze_why_explains_paths_and_agrees_with_push(tmp_path: Path) -> None:
    """--why prints one line per path; push protects exactly what analyze said."""
    r = CliRunner().invoke(main, ["analyze", f"oci:{EXAMPLE}:latest", "--strip", "/usr/local/**",
                                  "--why", "/usr/local/lib/python3.11/os.py",
                                  "--why", "/var/cache/apt/pkgcache.bin", "--why", "/nope"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "/usr/local/lib/python3.11/os.py: kept: rule user.strip.1 matches it, but the image "
        "needs it: usr/local/lib/python3.11/os.py <- usr/local/bin/python3 (interpreter "
        "start-up) <- app/main.py (shebang) <- Entrypoint",
        "/var/cache/apt/pkgcache.bin: removed by rule caches.apt-archives",
        "/nope: not in the image"]
    r = CliRunner().invoke(main, ["analyze", f"oci:{EXAMPLE}:latest", "--strip", "/usr/local/**",
                                  "--json", "-"])
    analyzed = json.loads(r.output)["images"][0]
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v",
                                  "--strip", "/usr/local/**", "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    pushed = json.loads((tmp_path / "r.json").read_text())["images"][0]
    assert pushed["protected"] == analyzed["protected"]
    assert pushed["overrides"] == analyzed["overrides"]
    assert "kept /usr/local/bin/python3: rule user.strip.1 overridden (needed: " in r.output


def test_no_protect_removes_with_a_warning(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v",
                                  "--strip", "/usr/local/**", "--no-protect", "/usr/local/lib/**",
                                  "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [f["path"] for f in doc["images"][0]["forced"]] == ["usr/local/lib/python3.11/os.py"]
    assert ("warning: --no-protect /usr/local/lib/**: removing /usr/local/lib/python3.11/os.py "
            "although the image needs it (usr/local/lib/python3.11/os.py <- ") in r.output
    r = CliRunner().invoke(main, ["analyze", f"oci:{EXAMPLE}:latest", "--no-protect", "/a/../b"])
    assert r.exit_code == 2 and "--no-protect" in r.output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["push", "docker-daemon:app:1", f"oci:{tmp_path}/o"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o",
                                  "--merge-threshold", "lots"])
    assert r.exit_code == 2


def test_sizes() -> None:
    assert parse_size("16MiB") == 16 << 20
    assert parse_size("10MB") == 10_000_000
    assert parse_size("4096") == 4096


def test_undecodable_file_names_are_printed_as_bytes(tmp_path: Path) -> None:
    import subprocess
    import sys

    from support.layoututil import make_image, tagged, write_layout
    src = tmp_path / "src"
    name = b"tmp/caf\xe9-\xff.log".decode("utf-8", "surrogateescape")
    write_layout(src, [tagged(make_image(src, [{name: b"x" * 100, "etc/ok": b"ok"}]), "v1")])
    import os
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # as in a UTF-8 desktop locale
    out = subprocess.run([sys.executable, "-m", "slimmer.cli", "analyze", f"oci:{src}:v1"],
                         capture_output=True, env=env)
    assert out.returncode == 0, out.stderr
    assert b"/tmp/caf\xe9-\xff.log" in out.stdout


def test_layer_cache_and_no_cache(tmp_path: Path, own_layer_cache: Path) -> None:
    db = own_layer_cache / "slimmer" / "layers.db"
    r = CliRunner().invoke(main, ["push", "--no-cache", f"oci:{EXAMPLE}:latest",
                                  f"oci:{tmp_path}/o:a"])
    assert r.exit_code == 0, r.output
    assert not db.exists()
    r = CliRunner().invoke(main, ["push", "--json", "-", f"oci:{EXAMPLE}:latest",
                                  f"oci:{tmp_path}/o:b"])
    assert r.exit_code == 0 and db.exists()
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:c"])
    assert r.exit_code == 0 and "from cache" in r.output
    r = CliRunner().invoke(main, ["push", "--level", "23", f"oci:{EXAMPLE}:latest",
                                  f"oci:{tmp_path}/o:d"])
    assert r.exit_code == 2 and "--level for zstd must be 1..22" in r.output
