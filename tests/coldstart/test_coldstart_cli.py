"""``slim coldstart`` without containerd: the built-in proxy on a layout and on a registry image,
the fallback note on a machine without containerd, its ``--html`` page (checked before the run,
written after it, atomically), and bad input (one line, exit 2 or 1)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from slimmer import api
from slimmer.cli import main
from slimmer.coldstart import session
from slimmer.errors import RuntimeUnavailableError

from support import REPO
from support.coldstart_results import comparison, did_not_start
from support.imagetools import read_manifest
from support.registry_server import Registry, missing, run_registry, skopeo

EXAMPLE = REPO / "testdata" / "example"
SLIM = str(Path(sys.executable).parent / "slim")


def slim(*args: str, path: str | None = None, tmp: Path | None = None
         ) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, optionally with another PATH (no containerd)."""
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return subprocess.run([SLIM, *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)


def expected_counts(layout: Path) -> tuple[int, int, int]:
    """(compressed bytes, unpacked bytes, entries) of the example, read with tarfile."""
    manifest = read_manifest(layout, "latest")
    unpacked = entries = 0
    for desc in manifest["layers"]:
        blob = layout / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]
        with tarfile.open(fileobj=io.BytesIO(blob.read_bytes()), mode="r:*") as tar:
            for member in tar:
                if os.path.basename(member.name).startswith(".wh."):
                    continue
                entries += 1
                unpacked += member.size if member.isreg() else 0
    return sum(d["size"] for d in manifest["layers"]), unpacked, entries


def test_the_proxy_on_a_layout_measures_and_says_it_is_the_proxy() -> None:
    r = CliRunner().invoke(main, ["coldstart", f"oci:{EXAMPLE}:latest", "--runtime", "proxy",
                                  "--runs", "2", "--json", "-"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["schema"] == "slimmer.coldstart/v1"
    assert doc["runtime"] == "proxy" and doc["note"] == "chosen with --runtime proxy"
    (img,) = doc["images"]
    assert (img["compressed_bytes"], img["unpacked_bytes"], img["files"]) == \
        expected_counts(EXAMPLE)
    assert img["layers"] == 6 and len(img["runs"]) == 2
    assert all(run["start"] is None and run["pull"] > 0 and run["unpack"] > 0
               for run in img["runs"])
    r = CliRunner().invoke(main, ["coldstart", f"oci:{EXAMPLE}:latest", "--runtime", "proxy",
                                  "--runs", "1"])
    assert r.exit_code == 0
    assert "built-in proxy (pull + decompress + untar; the image is not run)" in r.output


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if missing() is not None:
        pytest.skip(str(missing()))
    yield from run_registry(tmp_path_factory.mktemp("registry"))


@pytest.mark.integration
def test_the_proxy_on_a_registry_image(registry: Registry) -> None:
    skopeo("copy", "--dest-tls-verify=false", f"oci:{EXAMPLE}:latest",
           f"docker://{registry.host}/cold/example:v1")
    r = CliRunner().invoke(main, ["coldstart", f"{registry.host}/cold/example:v1",
                                  "--runtime", "proxy", "--runs", "1", "--json", "-"])
    assert r.exit_code == 0, r.output
    (img,) = json.loads(r.output)["images"]
    assert img["image"] == f"{registry.host}/cold/example:v1"
    assert img["compressed_bytes"] == expected_counts(EXAMPLE)[0] and len(img["runs"]) == 1


def test_without_containerd_it_falls_back_with_a_note(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    r = slim("coldstart", f"oci:{EXAMPLE}:latest", "--runs", "1", path=str(empty))
    assert r.returncode == 0, r.stderr
    reason = "containerd is not installed" if os.geteuid() == 0 else "not running as root"
    assert f"built-in proxy (pull + decompress + untar; the image is not run): {reason}" \
        in r.stdout
    assert r.stderr == ""
    r = slim("coldstart", f"oci:{EXAMPLE}:latest", "--runtime", "containerd", path=str(empty))
    assert r.returncode == 1
    assert r.stderr == f"slim: error: --runtime containerd: {reason}" + (
        " (Debian package containerd)\n" if os.geteuid() == 0 else "\n")


def test_push_smoke_without_containerd_refuses_before_writing(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "out"
    r = slim("push", f"oci:{EXAMPLE}:latest", f"oci:{out}:v1", "--smoke", "/app/main.py",
             path=str(empty))
    assert r.returncode == 1
    assert r.stderr.startswith("slim: error: --smoke runs the image, which needs containerd: ")
    assert r.stderr.count("\n") == 1
    assert not out.exists()


def test_runtime_containerd_without_root_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert session.select_runtime("auto").note == "not running as root (containerd needs root)"
    with pytest.raises(RuntimeUnavailableError, match="^--runtime containerd: not running as "
                                                      "root"):
        session.select_runtime("containerd")


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"),
                    reason="needs root and setpriv to run slim as another user")
def test_runtime_containerd_as_a_real_other_user(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o777)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SLIM,
                        "coldstart", f"oci:{EXAMPLE}:latest", "--runtime", "containerd"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)})
    if "Permission denied" in r.stderr and "slim: error" not in r.stderr:
        pytest.skip("the virtual environment is not readable by another user here")
    assert r.returncode == 1
    assert r.stderr == "slim: error: --runtime containerd: not running as root (containerd " \
                       "needs root)\n"


@pytest.mark.parametrize("args, message", [
    (["--runs", "0"], "Invalid value for '--runs'"),
    (["--ready-log", "("], "--ready-log '(' is not a regular expression"),
    (["--ready-url", "ftp://x/"], "must be an http:// or https:// URL"),
    (["--ready-url", "http://127.0.0.1:1/", "--ready-log", "x"], "not both"),
    (["--bandwidth", "fast"], "not a bandwidth"),
    (["--timeout", "soon"], "not a duration"),
    (["--timeout", "0"], "--timeout must be more than 0 seconds"),
    (["--cmd", "'unbalanced"], "--cmd"),
    (["--runtime", "docker"], "Invalid value for '--runtime'"),
])
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, ["coldstart", f"oci:{EXAMPLE}:latest", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_bad_images_are_one_line_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["coldstart"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["coldstart", f"oci:{tmp_path}/none", "--runtime", "proxy"])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "no such directory" in r.output
    r = CliRunner().invoke(main, ["coldstart", f"oci:{EXAMPLE}:latest", "--runtime", "proxy",
                                  "--json", str(tmp_path / "missing" / "r.json")])
    assert r.exit_code == 2 and "no such directory" in r.output   # checked before the run
    assert not (tmp_path / "missing").exists()


def test_the_page_is_written_after_the_run(tmp_path: Path) -> None:
    page, doc = tmp_path / "c.html", tmp_path / "c.json"
    r = CliRunner().invoke(main, ["coldstart", f"oci:{EXAMPLE}:latest", "--runtime", "proxy",
                                  "--runs", "1", "--html", str(page), "--json", str(doc)])
    assert r.exit_code == 0, r.output
    assert "built-in proxy" in r.output                       # the table is still printed
    text = page.read_text("utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<h1>slimmer cold start</h1>" in text
    assert f"oci:{EXAMPLE}:latest" in text and 'class="coldstart-chart"' in text
    assert "built-in proxy (pull + decompress + untar; the image is not run)" in text
    assert f">{json.loads(doc.read_text())['images'][0]['files']:,}<" in text
    assert sorted(os.listdir(tmp_path)) == ["c.html", "c.json"]


def test_a_page_that_cannot_be_written_fails_before_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_now(*_: object, **__: object) -> None:
        raise AssertionError("measured although --html cannot be written")
    monkeypatch.setattr(api, "coldstart", not_now)
    for bad, words in ((tmp_path / "no" / "c.html", "no such directory"),
                       (tmp_path, "is a directory")):
        r = CliRunner().invoke(main, ["coldstart", f"oci:{EXAMPLE}:latest", "--html", str(bad)])
        assert r.exit_code == 2, r.output
        assert r.output.count("\n") == 1 and f"--html {bad}: {words}" in r.output
    assert os.listdir(tmp_path) == []


def test_images_that_did_not_start_are_on_the_page_and_it_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measured = comparison()
    measured.images[1] = did_not_start("oci:slim:v1")
    monkeypatch.setattr(api, "coldstart", lambda *_, **__: measured)
    page = tmp_path / "c.html"
    r = CliRunner().invoke(main, ["coldstart", "oci:orig:v1", "oci:slim:v1", "--html",
                                  str(page)])
    assert r.exit_code == 1
    assert "slim: error: 1 of 2 images did not start: oci:slim:v1" in r.output
    assert "[2] did not start: exited with status 3" in page.read_text("utf-8")


def test_a_page_that_fails_to_write_is_one_line_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "coldstart", lambda *_, **__: comparison())

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full)
    page = tmp_path / "c.html"
    r = CliRunner().invoke(main, ["coldstart", "oci:orig:v1", "oci:slim:v1", "--html",
                                  str(page)])
    assert r.exit_code == 1
    assert r.output == f"slim: error: writing cold-start page {page}: No space left on device\n"
    assert os.listdir(tmp_path) == []
