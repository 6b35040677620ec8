"""Cold start in HTML without a browser: the ``slim coldstart --html`` page (table, runtime,
bars to scale, the images that did not start) on the report's own shell and policy, names and
output as text, the atomic write; and the push report's summary with before/after totals."""

from __future__ import annotations

import dataclasses
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import slimmer
from slimmer.report.coldstart_html import (
    CHART_WIDTH,
    render_coldstart_html,
    summary_rows,
    write_coldstart_html,
)
from slimmer.report.html import render_html
from slimmer.report.model import Report

from support.coldstart_results import comparison, did_not_start
from support.layoututil import make_image, tagged, write_layout

XSS = "oci:/tmp/<script>alert(1)</script>:v1"


class _Page(HTMLParser):
    """Tags with their attributes, and the text of every table row (cells joined by '|')."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first: str) -> list[str]:
        return next(r for r in self.rows if r and r[0] == first)


def _policy(page: str) -> str:
    found = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert found
    return found.group(1)


def test_the_page_has_the_table_the_runtime_and_bars_to_scale() -> None:
    page = render_coldstart_html(comparison())
    parsed = _Page(page)
    assert parsed.rows[0][2:] == ["compressed", "unpacked", "files", "layers", "pull",
                                  "unpack", "start", "total", "at 1 Gbit/s*"]
    assert parsed.row("[1] (source)")[2:] == ["238.4 MiB", "715.3 MiB", "51,696", "12",
                                             "2.0 s", "8.0 s", "1.0 s", "11.0 s", "13.0 s"]
    assert parsed.row("[2] (result)")[2:] == ["119.2 MiB", "357.6 MiB", "40,405", "7",
                                             "1.0 s", "4.0 s", "1.0 s", "6.0 s", "7.0 s"]
    assert parsed.row("[2]/[1]")[-2:] == ["0.55x", "0.54x"]
    assert "containerd 1.6.20 + runc, root on disk; 1 run(s) per image" in page
    assert "ready when the image&#x27;s own command exits 0" in page
    assert "modelled: total + compressed bytes / 1 Gbit/s" in page
    # one stacked bar per image, pull/unpack/start, all to one scale (the longest: 11 s)
    bars = [(a["data-phase"], float(a["width"] or 0)) for t, a in parsed.tags
            if t == "rect" and "data-phase" in a]
    assert [p for p, _ in bars] == ["pull", "unpack", "start"] * 2
    assert sum(w for _, w in bars[:3]) == pytest.approx(CHART_WIDTH, abs=0.2)
    assert sum(w for _, w in bars[3:]) == pytest.approx(CHART_WIDTH * 6 / 11, abs=0.2)
    assert ">[1] (source) total 11.0 s<" in page and "<title>unpack 8.0 s</title>" in page


def test_the_proxy_page_says_so_and_draws_no_start() -> None:
    page = render_coldstart_html(comparison(runtime="proxy"))
    assert "built-in proxy (pull + decompress + untar; the image is not run): chosen with " \
           "--runtime proxy" in page
    assert _Page(page).row("[1] (source)")[8] == "-"          # start
    assert 'data-phase="start"' not in page                    # neither a bar nor a legend
    assert "ready when" not in page


def test_names_and_output_are_text_and_the_shell_is_the_reports() -> None:
    measured = comparison(source=XSS)
    measured.images.append(did_not_start(output=("<img src=x onerror=alert(2)>", "\x1b[31mred")))
    page = render_coldstart_html(measured)
    assert "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "[3] did not start: exited with status 3" in page
    assert "&lt;img src=x onerror=alert(2)&gt;\n\\x1b[31mred</pre>" in page
    assert _Page(page).row("[3]")[2:] == ["1000 B", "2.0 KiB", "3", "1"] + ["-"] * 5
    tags = _Page(page).tags
    assert [a for t, a in tags if t == "script"] == [{}]       # only the page's own script
    for tag, attrs in tags:
        assert not {"src", "href", "onerror", "onload"} & set(attrs), (tag, attrs)
    # the same style, script and policy as the report page
    report = Report("analyze", "oci:a", None, "sha256:" + "0" * 64, None, [], [], [])
    assert _policy(page) == _policy(render_html(report))
    assert _policy(page).startswith("default-src 'none';")


def test_nothing_measured_gives_a_page_without_bars() -> None:
    measured = dataclasses.replace(comparison(), images=[did_not_start()])
    page = render_coldstart_html(measured)
    assert 'class="coldstart-chart"' not in page and "[1] did not start" in page
    assert page.endswith("</html>\n")


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "c.html"
    write_coldstart_html(comparison(), str(out))
    good = out.read_bytes()
    assert good.startswith(b"<!DOCTYPE html>") and b"slimmer cold start" in good

    def broken(*_: Any) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_coldstart_html(comparison(result="oci:other:v2"), str(out))
    assert out.read_bytes() == good and os.listdir(tmp_path) == ["c.html"]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("push")
    write_layout(tmp / "src", [tagged(make_image(tmp / "src", [
        {"usr/share/doc/a/README": b"r" * 3000, "app/run": b"a" * 5000}]), "v1")])
    return slimmer.slim(f"oci:{tmp}/src:v1", f"oci:{tmp}/out:v1")


def test_the_push_summary_shows_cold_start_before_and_after(pushed: Report) -> None:
    img = pushed.images[0]
    assert img.digest is not None
    report = dataclasses.replace(pushed, coldstart=comparison(
        source_digest=img.source_digest, result_digest=img.digest))
    page = render_html(report)
    summary = page[page.index('<table class="summary">'):]
    summary = summary[:summary.index("</table>")]
    rows = {r[0]: r[1:] for r in _Page(summary).rows}
    assert rows["cold start (median total)"] == ["11.0 s", "6.0 s"]
    assert rows["cold start at 1 Gbit/s (modelled)"] == ["13.0 s", "7.0 s"]
    # the whole measurement follows the images, with its table and bars
    assert page.index("Removed files") < page.index("<h2>Cold start: source and result</h2>")
    assert page.count('class="coldstart-chart"') == 1
    assert "cold start" not in render_html(pushed)            # only when it was measured


def test_summary_rows_only_for_the_image_measured() -> None:
    measured = comparison()
    assert summary_rows(measured, "sha256:" + "99" * 32, "sha256:" + "98" * 32) == []
    source_only = summary_rows(measured, measured.images[0].digest, None)
    assert source_only[0] == ("cold start (median total)", "11.0 s", "-")
