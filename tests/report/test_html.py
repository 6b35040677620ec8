"""The HTML page without a browser: the policy allows exactly its inline style and script,
nothing is loaded from anywhere, names are text, big tables are capped, more sections can be
added, and the page is written atomically or not at all."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import slimmer
from slimmer.report import html as report_html
from slimmer.report.html import display, fate_label, render_html, write_html
from slimmer.report.model import Report

from support.layoututil import make_image, tagged, write_layout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    src = tmp_path_factory.mktemp("src")
    write_layout(src, [tagged(make_image(src, [
        {"usr/share/doc/a/README": b"r" * 3000, "tmp/<b>x</b>\n.log": b"x" * 100,
         "app/run": b"a" * 5000}]), "v1")])
    return slimmer.analyze(f"oci:{src}:v1")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag

    def handle_data(self, data: str) -> None:
        if self._in in ("script", "style"):
            self.data[self._in] = self.data.get(self._in, "") + data


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_policy_allows_only_the_inline_style_and_script(report: Report) -> None:
    page = render_html(report)
    parser = _Tags()
    parser.feed(page)
    csp = next(a["content"] for t, a in parser.tags
               if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style and script
    assert directives["style-src"] == _sha(style.group(1))
    assert directives["script-src"] == _sha(script.group(1))
    # nothing to fetch: no src/href attributes, no link elements
    for tag, attrs in parser.tags:
        assert tag not in ("link", "img", "iframe")
        assert not {"src", "href"} & set(attrs), (tag, attrs)
    assert not re.search(r"https?://", page)


def test_names_are_text(report: Report) -> None:
    page = render_html(report)
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;\\n.log" in page          # the treemap's title and label
    assert "\\u003cb\\u003ex\\u003c/b\\u003e\\\\n.log" in page   # the table's JSON rows
    assert display("a\nb\tc\x1b[31m") == "a\\nb\\tc\\x1b[31m"
    assert display(b"caf\xe9".decode("utf-8", "surrogateescape")) == "caf\\xe9"
    assert display("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert display("ünï") == "ünï"


def test_the_legend_says_protected_as_the_model_does() -> None:
    """README "Report JSON": protected = a strip rule matched, a keep rule or the static
    closure won (not only the entrypoint: everything it needs, transitively)."""
    label = fate_label("protected", analyze=True)
    assert "a keep rule or the static closure" in label and "entrypoint" not in label


def test_big_tables_are_capped(report: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_html, "TABLE_ROWS", 1)
    page = render_html(report)
    assert "The 1 largest of 2 removed files" in page
    rows = re.search(r'"rows":(\[.*?\]\]),"sort"', page)
    assert rows and rows.group(1).count('["/') == 1


def test_more_sections_can_follow(report: Report) -> None:
    def extra(page: report_html.Page, img: Any) -> str:
        return f"<h3>cold start</h3><p>{report_html.esc(img.source_digest)}</p>"
    page = render_html(report, image_sections=report_html.IMAGE_SECTIONS + (extra,))
    assert page.index("Files it would remove") < page.index("<h3>cold start</h3>")
    assert report.images[0].source_digest in page


def test_report_without_images_or_tree() -> None:
    nothing = Report("push", "oci:a", "oci:b", "sha256:" + "0" * 64, "sha256:" + "1" * 64, [],
                     [], ["destination already holds this source: nothing written"])
    page = render_html(nothing)
    assert "This report lists no images" in page and "nothing written" in page
    old = nothing.to_dict()
    old["schema"] = "slimmer.report/v1"
    assert Report.from_dict(old).images == []


def test_v1_reports_still_render(report: Report) -> None:
    doc = report.to_dict()
    doc["schema"] = "slimmer.report/v1"
    for img in doc["images"]:
        del img["tree"]
    page = render_html(Report.from_dict(doc))
    assert "No file tree" in page


def test_write_is_atomic(report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.html"
    write_html(report, str(out))
    good = out.read_bytes()
    assert good.startswith(b"<!DOCTYPE html>") and good.endswith(b"</html>\n")
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def broken(*_: Any) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        write_html(report, str(out))
    assert out.read_bytes() == good                      # the old page, whole
    assert os.listdir(tmp_path) == ["r.html"]            # no temp file left
    with pytest.raises(OSError):
        write_html(report, str(tmp_path / "new.html"))
    assert os.listdir(tmp_path) == ["r.html"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_ids_are_unique_with_several_images(report: Report) -> None:
    import dataclasses
    two = dataclasses.replace(report, images=[report.images[0], report.images[0]])
    page = render_html(two)
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)) and len(ids) > 4
    assert page.count('class="treemap"') == 2 and page.count('class="datatable"') == 2
