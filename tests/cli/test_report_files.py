"""``--html`` and ``--json`` files from ``slim push``/``analyze``: written after a run that
succeeded, never by one that failed, checked before the run, the cold start of ``--coldstart``
in the page's summary; and the progress display: rows with bytes, speed and time left on a
terminal, nothing elsewhere."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from slimmer.cli import main
from slimmer.cli.progress import Progress
from slimmer.units import format_duration

from support import REPO

EXAMPLE = REPO / "testdata" / "example"


def test_push_and_analyze_write_the_page(tmp_path: Path) -> None:
    page = tmp_path / "push.html"
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v",
                                  "--html", str(page), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    text = page.read_text("utf-8")
    assert text.startswith("<!DOCTYPE html>") and "slimmer report: push" in text
    assert "Content-Security-Policy" in text and "Removed files" in text
    assert "(not built: analyze)" not in text
    r = CliRunner().invoke(main, ["analyze", f"oci:{EXAMPLE}:latest", "--html",
                                  str(tmp_path / "a.html")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "a.html").read_text("utf-8")
    assert "Profiles not chosen would also remove" in text
    assert sorted(os.listdir(tmp_path)) == ["a.html", "o", "push.html", "r.json"]


def test_push_coldstart_puts_the_measurement_in_the_summary(tmp_path: Path) -> None:
    """A real measurement (the built-in proxy, one run each): the page's summary rows are
    the source's and the result's median totals from the same report as the JSON."""
    page, doc = tmp_path / "push.html", tmp_path / "r.json"
    r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v",
                                  "--coldstart", "--coldstart-runs", "1", "--runtime", "proxy",
                                  "--html", str(page), "--json", str(doc)])
    assert r.exit_code == 0, r.output
    measured = {i["role"]: i for i in json.loads(doc.read_text())["coldstart"]["images"]}
    text = page.read_text("utf-8")
    row = re.search(r"<tr><th>cold start \(median total\)</th><td class=\"num\">([^<]+)</td>"
                    r"<td class=\"num\">([^<]+)</td></tr>", text)
    assert row, text
    assert row.groups() == (format_duration(measured["source"]["median"]["total"]),
                            format_duration(measured["result"]["median"]["total"]))
    assert "<h2>Cold start: source and result</h2>" in text and "built-in proxy" in text


def test_a_failed_run_writes_no_page(tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["analyze", f"oci:{tmp_path}/missing:latest", "--html",
                                  str(page), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 1
    assert os.listdir(tmp_path) == []


def test_a_page_that_cannot_be_written_fails_before_the_run(tmp_path: Path) -> None:
    for bad, words in ((tmp_path / "no" / "r.html", "no such directory"),
                       (tmp_path, "is a directory")):
        r = CliRunner().invoke(main, ["push", f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v",
                                      "--html", str(bad)])
        assert r.exit_code == 2, r.output
        assert r.output.count("\n") == 1 and words in r.output
    assert os.listdir(tmp_path) == []                    # nothing was pushed


def test_progress_draws_layers_with_bytes_speed_and_time_left() -> None:
    out = io.StringIO()
    now = [100.0]
    progress = Progress(out, force=True, clock=lambda: now[0])
    progress.layer("build", "layer 0 (rebuild)", 0, 100 << 20)
    progress.layer("build", "layer 1 (recompress)", 0, 50 << 20)
    for second in range(1, 4):
        now[0] += 1
        progress.layer("build", "layer 0 (rebuild)", second * (10 << 20), 100 << 20)
    progress._bars.refresh()                              # type: ignore[union-attr]
    progress.close()
    drawn = out.getvalue()
    assert "layer 0 (rebuild)" in drawn and "30.0 MiB / 100.0 MiB" in drawn
    assert "build" in drawn and "30.0 MiB / 150.0 MiB" in drawn
    assert "10.0 MiB/s" in drawn and "7.0 s left" in drawn
    assert "layer 1 (recompress)" not in drawn            # queued, not in flight yet


def test_progress_is_silent_when_not_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = Progress(out)
    assert not progress.enabled
    progress.layer("scan", "layer 0", 0, 10)
    progress("scan", 1, 1)
    progress.close()
    assert out.getvalue() == ""
    proc = subprocess.run([sys.executable, "-m", "slimmer.cli", "push", f"oci:{EXAMPLE}:latest",
                           f"oci:{tmp_path}/o:v"], capture_output=True)
    assert proc.returncode == 0 and proc.stderr == b""


def test_progress_shows_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: the display is drawn there (and cleared at the end)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "slimmer.cli", "push",
                             f"oci:{EXAMPLE}:latest", f"oci:{tmp_path}/o:v"],
                            stdout=subprocess.DEVNULL, stderr=slave,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    drawn = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    assert proc.wait(30) == 0
    os.close(master)
    text = drawn.decode("utf-8", "replace")
    assert "scan" in text and "build" in text and " / " in text and "B/s" in text, text
