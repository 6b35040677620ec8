"""``slim coldstart`` and ``slim push --smoke/--coldstart`` on the real runtime: a private
containerd + runc (as root), a tiny static program as the image. Every test also checks that
nothing is left behind: no process started under its temp dir, no mount, no directory, no
container process, no cgroup; also after a failure, a timeout, Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from slimmer.coldstart import procs
from slimmer.coldstart.containerd import SOCKETS_PREFIX, find_tools

from support import REPO
from support.probe import PROBE_PATH, build_probe, missing_compiler, probe_image
from support.registry_server import Registry, free_port, missing, run_registry, skopeo


def _missing() -> str | None:
    _, why = find_tools()
    return why or missing() or missing_compiler()


pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]
SLIM = str(Path(sys.executable).parent / "slim")
PROBE = "/" + PROBE_PATH


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Layouts: ``ok`` (the probe), ``app`` (the probe, a config file and docs)."""
    base = tmp_path_factory.mktemp("probe")
    probe = build_probe(base / "bin")
    probe_image(base / "ok", probe)
    probe_image(base / "app", probe, extra={"etc/app.conf": b"port=1\n",
                                            "usr/share/doc/app/README": b"docs " * 200})
    return {"ok": base / "ok", "app": base / "app"}


def slim(tmp: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """``slim ARGS`` with its temp dir (the runtime's directories) under ``tmp``."""
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run([SLIM, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TMPDIR": str(work)}, cwd=REPO)


def assert_nothing_left(tmp: Path) -> None:
    work = tmp / "work"
    for _ in range(50):  # processes killed by the run may need a moment to be reaped
        if not procs.pids_mentioning(str(work)) and not procs.pids_mentioning(
                PROBE + "\0sleep"):
            break
        time.sleep(0.1)
    assert procs.pids_mentioning(str(work)) == []           # containerd, shims, registry
    assert procs.pids_mentioning("/" + SOCKETS_PREFIX) == []  # shims name their socket
    assert not [p for d in ("/run", "/tmp") if os.path.isdir(d) for p in os.listdir(d)
                if p.startswith(SOCKETS_PREFIX)]
    assert procs.pids_mentioning(PROBE + "\0") == []         # the image's processes
    assert procs.mounts_under(str(work)) == []               # snapshots, rootfs, tmpfs
    assert list(work.iterdir()) == []                        # every directory removed
    for point, fstype in procs.mount_points():               # the containers' cgroups
        if fstype in ("cgroup", "cgroup2") and os.path.isdir(point):
            assert not [n for n in os.listdir(point) if n.startswith("slimmer-")]


def report(r: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(r.stdout)


def test_layout_image_exit_zero(images: dict[str, Path], tmp_path: Path) -> None:
    r = slim(tmp_path, "coldstart", f"oci:{images['ok']}", "--runs", "2", "--json", "-")
    assert r.returncode == 0, r.stderr
    doc = report(r)
    assert doc["runtime"] == "containerd" and doc["runtime_version"] and doc["note"] is None
    (img,) = doc["images"]
    assert img["error"] is None and len(img["runs"]) == 2 and img["layers"] == 1
    for run in img["runs"]:
        assert run["pull"] > 0 and run["unpack"] > 0 and run["start"] > 0
        assert run["total"] == pytest.approx(run["pull"] + run["unpack"] + run["start"])
    assert img["modelled_total"] == pytest.approx(img["median"]["total"]
                                                  + img["compressed_bytes"] / 125e6)
    assert_nothing_left(tmp_path)


def test_ready_url_on_a_tmpfs(images: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    r = slim(tmp_path, "coldstart", f"oci:{images['ok']}", "--runs", "1", "--tmpfs",
             "--cmd", f"{PROBE} serve {port}", "--ready-url", f"http://127.0.0.1:{port}/")
    assert r.returncode == 0, r.stderr
    assert "root on a tmpfs" in r.stdout and f"http://127.0.0.1:{port}/ answers" in r.stdout
    assert_nothing_left(tmp_path)


def test_ready_log(images: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    r = slim(tmp_path, "coldstart", f"oci:{images['ok']}", "--runs", "1", "--json", "-",
             "--cmd", f"{PROBE} serve {port}", "--ready-log", r"listening on \d+")
    assert r.returncode == 0, r.stderr
    assert report(r)["images"][0]["runs"][0]["start"] > 0
    assert_nothing_left(tmp_path)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from run_registry(tmp_path / "registry")


def test_registry_image_and_two_images_alternate(images: dict[str, Path], tmp_path: Path,
                                                 registry: Registry) -> None:
    skopeo("copy", "--dest-tls-verify=false", f"oci:{images['app']}:latest",
           f"docker://{registry.host}/cold/app:v1")
    r = slim(tmp_path, "coldstart", f"{registry.host}/cold/app:v1", f"oci:{images['ok']}",
             "--runs", "2", "--json", "-")
    assert r.returncode == 0, r.stderr
    first, second = report(r)["images"]
    assert first["image"] == f"{registry.host}/cold/app:v1" and len(first["runs"]) == 2
    assert second["image"] == f"oci:{images['ok']}" and len(second["runs"]) == 2
    assert first["files"] > second["files"]
    assert_nothing_left(tmp_path)


def test_an_image_that_fails_is_reported_with_its_output(images: dict[str, Path],
                                                         tmp_path: Path) -> None:
    r = slim(tmp_path, "coldstart", f"oci:{images['ok']}", f"oci:{images['app']}", "--runs", "2",
             "--cmd", f"{PROBE} fail", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 1
    assert r.stderr == "slim: error: 2 of 2 images did not start: " \
                       f"oci:{images['ok']}, oci:{images['app']}\n"
    assert "[1] did not start: exited with status 3" in r.stdout
    assert "probe: config missing, giving up" in r.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    for img in doc["images"]:
        assert img["error"] == "exited with status 3" and img["runs"] == []
        assert img["output"][-1] == "probe: config missing, giving up"
    assert_nothing_left(tmp_path)


def test_not_ready_before_the_timeout(images: dict[str, Path], tmp_path: Path) -> None:
    started = time.monotonic()
    r = slim(tmp_path, "coldstart", f"oci:{images['ok']}", "--runs", "3", "--timeout", "2",
             "--cmd", f"{PROBE} sleep")
    assert r.returncode == 1
    assert "[1] did not start: not ready after 2.0 s" in r.stdout and "sleeping" in r.stdout
    assert time.monotonic() - started < 30   # not three runs of it
    assert_nothing_left(tmp_path)


def interrupt_when_running(argv: list[str], tmp: Path, sig: signal.Signals
                           ) -> subprocess.CompletedProcess[str]:
    """Start ``slim ARGV``, send ``sig`` once the image's ``probe sleep`` runs."""
    work = tmp / "work"
    work.mkdir(exist_ok=True)
    proc = subprocess.Popen([SLIM, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TMPDIR": str(work)}, cwd=REPO)
    deadline = time.monotonic() + 60
    while not procs.pids_mentioning(PROBE + "\0sleep"):   # the container is running
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_leaves_nothing_behind(images: dict[str, Path], tmp_path: Path,
                                           sig: signal.Signals) -> None:
    r = interrupt_when_running(["coldstart", f"oci:{images['ok']}", "--tmpfs", "--cmd",
                                f"{PROBE} sleep", "--timeout", "60"], tmp_path, sig)
    assert r.returncode == 130
    assert r.stderr == "slim: interrupted\n"
    assert_nothing_left(tmp_path)


def test_push_interrupted_during_the_smoke_test_writes_nothing(images: dict[str, Path],
                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = interrupt_when_running(["push", f"oci:{images['app']}", f"oci:{out}:v1", "--smoke",
                                f"{PROBE} sleep"], tmp_path, signal.SIGINT)
    assert r.returncode == 130 and r.stderr.endswith("slim: interrupted\n")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert_nothing_left(tmp_path)


def test_push_smoke_passes_and_is_in_the_report(images: dict[str, Path], tmp_path: Path
                                                ) -> None:
    out = tmp_path / "out"
    r = slim(tmp_path, "push", f"oci:{images['app']}", f"oci:{out}:v1",
             "--smoke", f"{PROBE} need /etc/app.conf", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert f"smoke test passed: {PROBE} need /etc/app.conf exited 0" in r.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["smoke"]["cmd"] == [PROBE, "need", "/etc/app.conf"]
    assert "coldstart" not in doc
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == \
        doc["digest"]
    assert_nothing_left(tmp_path)


def _blobs(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def test_push_smoke_failure_leaves_the_layout_tag_as_it_was(images: dict[str, Path],
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert slim(tmp_path, "push", f"oci:{images['app']}", f"oci:{out}:v1").returncode == 0
    index, blobs = (out / "index.json").read_bytes(), _blobs(out)
    r = slim(tmp_path, "push", f"oci:{images['app']}", f"oci:{out}:v1", "--strip",
             "/etc/app.conf", "--smoke", f"{PROBE} need /etc/app.conf")
    assert r.returncode == 1
    first = r.stderr.splitlines()[0]
    assert first == (f"slim: error: smoke test '{PROBE} need /etc/app.conf' failed in the "
                     "slimmed image: exited with status 1 (last line: probe: /etc/app.conf is "
                     "missing); nothing was tagged")
    assert (out / "index.json").read_bytes() == index and _blobs(out) == blobs
    # a new layout is not created at all
    r = slim(tmp_path, "push", f"oci:{images['app']}", f"oci:{tmp_path}/new:v1", "--strip",
             "/etc/app.conf", "--smoke", f"{PROBE} need /etc/app.conf")
    assert r.returncode == 1 and not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".new")] == []
    assert_nothing_left(tmp_path)


def test_push_smoke_failure_leaves_the_registry_tag_as_it_was(images: dict[str, Path],
                                                              tmp_path: Path,
                                                              registry: Registry) -> None:
    dest = f"{registry.host}/team/app:slim"
    assert slim(tmp_path, "push", f"oci:{images['app']}", dest,
                "--smoke", f"{PROBE} need /etc/app.conf").returncode == 0
    before = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{dest}").stdout
    r = slim(tmp_path, "push", f"oci:{images['app']}", dest, "--strip", "/etc/app.conf",
             "--smoke", f"{PROBE} need /etc/app.conf")
    assert r.returncode == 1 and "nothing was tagged" in r.stderr
    assert skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{dest}").stdout == before
    assert_nothing_left(tmp_path)


def test_push_coldstart_adds_the_comparison_not_a_byte(images: dict[str, Path],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = slim(tmp_path, "push", f"oci:{images['app']}", f"oci:{out}:v1", "--coldstart",
             "--coldstart-runs", "1", "--smoke", f"{PROBE} ok", "--json",
             str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    cold = doc["coldstart"]
    assert cold["runtime"] == "containerd" and cold["runs"] == 1
    source, result = cold["images"]
    assert (source["role"], result["role"]) == ("source", "result")
    assert source["digest"] == doc["source_digest"] and result["digest"] == doc["digest"]
    assert result["files"] < source["files"]          # the docs profile removed the README
    assert len(source["runs"]) == len(result["runs"]) == 1
    assert "(source)" in r.stdout and "(result)" in r.stdout
    # the same push without the checks writes the same bytes
    plain = slim(tmp_path, "push", f"oci:{images['app']}", f"oci:{tmp_path}/plain:v1",
                 "--json", "-")
    assert json.loads(plain.stdout)["digest"] == doc["digest"]
    shutil.rmtree(tmp_path / "plain")
    assert_nothing_left(tmp_path)
