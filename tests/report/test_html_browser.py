"""The HTML report in a real browser (headless Chromium): no console error and no dialog,
the treemap shows the image's top directories in the colours of their fates and zooms on a
click, the removed-files table filters and sorts, names from the image show as text and run
nothing, and an image without files gives a page that says so. A screenshot is kept in
out/test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import slimmer
from slimmer.report.html import write_html

from support.browser import ARTIFACTS, alert_text, chromium, console_errors, missing_browser
from support.layoututil import make_image, tagged, write_layout

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))]

XSS = "tmp/<img src=x onerror=alert(1)>.txt"
NEWLINE = "tmp/new\nline.txt"
NOT_UTF8 = b"tmp/caf\xe9.log".decode("utf-8", "surrogateescape")
SVG_DIR = "opt/<svg onload=alert(2)>"


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, slimmer.report.Report]:
    tmp = tmp_path_factory.mktemp("html")
    src = tmp / "src"
    write_layout(src, [tagged(make_image(src, [
        {"app/main.py": b"m" * 9000, "app/lib/big.bin": b"b" * 20000,
         "usr/share/doc/pkg/README": b"r" * 6000, "usr/share/doc/pkg/changelog": b"c" * 3000,
         "usr/share/doc/keep/NOTE": b"n" * 2500, "usr/bin/tool": b"t" * 7000,
         "var/cache/apt/archives/a.deb": b"o" * 2000,
         XSS: b"x" * 1500, NEWLINE: b"n" * 1200, NOT_UTF8: b"u" * 1100,
         SVG_DIR + "/data.bin": b"d" * 4000},
        {"var/cache/apt/archives/a.deb": b"N" * 5000},
    ]), "v1")])
    report = slimmer.analyze(f"oci:{src}:v1", slimmer.SlimOptions(
        keep=("/usr/share/doc/keep/**",)))
    out = tmp / "report.html"
    write_html(report, str(out))
    return out, report


def _js(driver: Any, code: str, *args: Any) -> Any:
    return driver.execute_script(code, *args)


def _view(driver: Any) -> str:
    return str(_js(driver, "return document.querySelector('.treemap g.view.on').dataset.path"))


def _children(driver: Any) -> list[str]:
    return list(_js(driver, "return [...document.querySelectorAll('.treemap g.view.on > g.node')]"
                            ".map(n => n.dataset.path)"))


def _fills(driver: Any, path: str) -> set[str]:
    """Computed fills of the coloured blocks drawn for ``path`` in the current view."""
    return set(_js(driver, """
        const node = [...document.querySelectorAll('.treemap g.view.on > g.node')]
            .find(n => n.dataset.path === arguments[0]);
        return [...node.querySelectorAll('rect[data-fate]')].map(r => getComputedStyle(r).fill);
    """, path))


def _legend(driver: Any) -> dict[str, str]:
    return dict(_js(driver, """
        return [...document.querySelectorAll('.legend li')].map(
            li => [li.dataset.fate, getComputedStyle(li.querySelector('rect')).fill]);"""))


def _click_node(driver: Any, path: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    node = _js(driver, """
        return [...document.querySelectorAll('.treemap g.view.on > g.node')]
            .find(n => n.dataset.path === arguments[0]);""", path)
    ActionChains(driver).move_to_element(node).click().perform()


def _rows(driver: Any) -> list[list[str]]:
    return list(_js(driver, """
        return [...document.querySelector('.datatable tbody').rows]
            .map(r => [...r.cells].map(c => c.textContent));"""))


def test_page_loads_nothing_and_runs_no_name(driver: Any, page: tuple[Path, Any]) -> None:
    path, report = page
    driver.get(path.as_uri())
    assert alert_text(driver) is None
    assert console_errors(driver) == []
    assert _js(driver, "return performance.getEntriesByType('resource').length") == 0
    assert _js(driver, "return document.querySelectorAll('img, iframe, object, embed, "
                       "[onload], [onerror]').length") == 0
    assert _js(driver, "return [...document.scripts].filter(s => s.type !== "
                       "'application/json').length") == 1
    csp = _js(driver, "return document.querySelector('meta[http-equiv="
                      "\"Content-Security-Policy\"]').content")
    assert csp.startswith("default-src 'none';")
    # the names show as text, escaped where they are not printable
    paths = {r[0] for r in _rows(driver)}
    assert {"/" + XSS, "/tmp/new\\nline.txt", "/tmp/caf\\xe9.log"} <= paths
    assert _js(driver, "return [...document.querySelectorAll('.treemap g.node')]"
                       ".some(n => n.dataset.path === arguments[0])", "/" + SVG_DIR)


def test_treemap_top_directories_colours_and_zoom(driver: Any, page: tuple[Path, Any]) -> None:
    path, report = page
    driver.get(path.as_uri())
    assert _view(driver) == "/"
    assert {"/app", "/usr", "/var", "/tmp", "/opt"} <= set(_children(driver))
    legend = _legend(driver)
    assert set(legend) == {"kept", "protected", "removed:caches", "removed:docs", "shadowed"}
    assert len(set(legend.values())) == 5           # one colour each
    assert _fills(driver, "/app") == {legend["kept"]}
    assert _fills(driver, "/tmp") == {legend["removed:caches"]}
    assert _fills(driver, "/usr") == {legend["kept"], legend["removed:docs"],
                                      legend["protected"]}
    assert _fills(driver, "/var") == {legend["removed:caches"], legend["shadowed"]}

    _click_node(driver, "/usr")
    assert _view(driver) == "/usr"
    assert set(_children(driver)) == {"/usr/share", "/usr/bin"}
    crumbs = _js(driver, "return [...document.querySelectorAll('.crumbs button')]"
                         ".map(b => b.textContent)")
    assert crumbs == ["/", "usr"]
    _click_node(driver, "/usr/share")
    assert _view(driver) == "/usr/share"
    _click_node(driver, "/usr/share/doc")
    assert _view(driver) == "/usr/share/doc"
    assert set(_children(driver)) == {"/usr/share/doc/pkg", "/usr/share/doc/keep"}
    assert _fills(driver, "/usr/share/doc/pkg") == {legend["removed:docs"]}
    assert _fills(driver, "/usr/share/doc/keep") == {legend["protected"]}
    _js(driver, "document.querySelector('.crumbs button').click()")
    assert _view(driver) == "/"
    _click_node(driver, "/tmp")
    assert {"/" + XSS, "/tmp/new\\nline.txt", "/tmp/caf\\xe9.log"} <= set(_children(driver))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _js(driver, "document.querySelector('.crumbs button').click()")
    shot = ARTIFACTS / "html-report.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert console_errors(driver) == [] and alert_text(driver) is None


def test_removed_table_filters_and_sorts(driver: Any, page: tuple[Path, Any]) -> None:
    from selenium.webdriver.common.by import By
    path, report = page
    removed = report.images[0].removed
    driver.get(path.as_uri())
    box = driver.find_element(By.CSS_SELECTOR, ".datatable")
    assert box.get_attribute("data-matches") == str(len(removed))
    sizes = [int(r["size"]) for r in sorted(removed, key=lambda r: -r["size"])]
    assert [r[1] for r in _rows(driver)][0] == slimmer.units.format_size(sizes[0])
    field = box.find_element(By.CSS_SELECTOR, "input")
    field.send_keys("doc")
    want = [r for r in removed if "doc" in r["path"].lower() or "doc" in r["rule"].lower()]
    assert 0 < len(want) < len(removed)
    assert box.get_attribute("data-matches") == str(len(want))
    assert sorted(r[0] for r in _rows(driver)) == sorted("/" + r["path"] for r in want)
    field.clear()
    field.send_keys("onerror")
    assert [r[0] for r in _rows(driver)] == ["/" + XSS]
    field.clear()
    field.send_keys(" ")          # whitespace only: everything again
    assert box.get_attribute("data-matches") == str(len(removed))
    box.find_element(By.CSS_SELECTOR, "th button").click()    # sort by path
    shown = [r[0] for r in _rows(driver)]
    assert shown == sorted(shown)
    assert console_errors(driver) == [] and alert_text(driver) is None


def test_image_without_files_says_so(driver: Any, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, [{}]), "v1")])
    out = tmp_path / "empty.html"
    write_html(slimmer.analyze(f"oci:{src}:v1"), str(out))
    driver.get(out.as_uri())
    text = _js(driver, "return document.body.innerText")
    assert "This image has no files." in text and "Nothing removed." in text
    assert console_errors(driver) == [] and alert_text(driver) is None
