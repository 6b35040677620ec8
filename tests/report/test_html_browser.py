"""The HTML report in a real browser (headless Chromium): no console error and no dialog,
the treemap shows the image's top directories in the colours of their fates and zooms on a
click, the removed-files and overrides tables filter and sort, names from the image show as
text and run nothing, and an image without files gives a page that says so. A push page shows
the cold start (a constructed measurement) in its summary and as bars, and so does the
``slim coldstart --html`` page. Screenshots are kept in out/test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

import slimmer
from slimmer.report.coldstart_html import write_coldstart_html
from slimmer.report.html import write_html

from support.browser import ARTIFACTS, alert_text, chromium, console_errors, missing_browser
from support.coldstart_results import comparison, did_not_start
from support.layoututil import make_image, tagged, write_layout

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser()))]

XSS = "tmp/<img src=x onerror=alert(1)>.txt"
NEWLINE = "tmp/new\nline.txt"
NOT_UTF8 = b"tmp/caf\xe9.log".decode("utf-8", "surrogateescape")
SVG_DIR = "opt/<svg onload=alert(2)>"
KEPT_XSS = "usr/share/doc/keep/<img src=x onerror=alert(3)>"


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


@pytest.fixture(scope="module")
def push_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, slimmer.report.Report]:
    """A pushed image with three overrides (two keep rules, one name that is markup) and a
    cold start measured for its source and result."""
    tmp = tmp_path_factory.mktemp("push-html")
    src = tmp / "src"
    write_layout(src, [tagged(make_image(src, [
        {"app/main.py": b"m" * 9000, "usr/share/doc/pkg/README": b"r" * 6000,
         "usr/share/doc/keep/NOTE": b"n" * 2500, KEPT_XSS: b"l" * 1000,
         "var/cache/apt/keep/a.deb": b"o" * 2000, "var/cache/apt/archives/b.deb": b"o" * 2000},
    ]), "v1")])
    report = slimmer.slim(f"oci:{src}:v1", f"oci:{tmp}/out:v1", slimmer.SlimOptions(
        keep=("/usr/share/doc/keep/**", "/var/cache/apt/keep/**")))
    img = report.images[0]
    assert img.digest is not None
    report.coldstart = comparison(source_digest=img.source_digest, result_digest=img.digest)
    out = tmp / "push.html"
    write_html(report, str(out))
    return out, report


def _bar_lengths(driver: Any) -> list[float]:
    """Drawn length of each image's stacked bar in the cold-start chart, top to bottom."""
    return list(_js(driver, """
        const rows = new Map();
        for (const r of document.querySelectorAll('.coldstart-chart rect[data-phase]')) {
            const y = r.getAttribute('y');
            rows.set(y, (rows.get(y) || 0) + r.getBoundingClientRect().width);
        }
        return [...rows.values()];"""))


def test_push_page_shows_the_cold_start_in_its_summary(driver: Any,
                                                       push_page: tuple[Path, Any]) -> None:
    path, report = push_page
    driver.get(path.as_uri())
    assert alert_text(driver) is None and console_errors(driver) == []
    assert _js(driver, "return performance.getEntriesByType('resource').length") == 0
    assert _js(driver, "return document.querySelector('h1').textContent") == \
        "slimmer report: push"
    summary = dict(_js(driver, """
        return [...document.querySelectorAll('table.summary tbody tr')].map(
            r => [r.cells[0].textContent, [...r.cells].slice(1).map(c => c.textContent)]);"""))
    img = report.images[0]
    assert summary["compressed"] == [slimmer.units.format_size(img.size_before),
                                     slimmer.units.format_size(img.size_after)]
    assert summary["cold start (median total)"] == ["11.0 s", "6.0 s"]
    assert summary["cold start at 1 Gbit/s (modelled)"] == ["13.0 s", "7.0 s"]
    text = _js(driver, "return document.querySelector('section.coldstart').innerText")
    assert "Cold start: source and result" in text and "containerd 1.6.20 + runc" in text
    source, result = _bar_lengths(driver)
    assert source > 100 and result / source == pytest.approx(6 / 11, abs=0.01)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "html-push-report.png"
    assert driver.save_screenshot(str(shot))
    assert console_errors(driver) == [] and alert_text(driver) is None


def test_overrides_table_filters_and_sorts(driver: Any, push_page: tuple[Path, Any]) -> None:
    from selenium.webdriver.common.by import By
    path, report = push_page
    overrides = report.images[0].overrides
    assert len(overrides) == 3
    driver.get(path.as_uri())
    field = driver.find_element(By.CSS_SELECTOR, 'input[aria-label="filter overrides"]')
    box = field.find_element(By.XPATH, "ancestor::div[@class='datatable']")

    def rows() -> list[list[str]]:
        return list(_js(driver, "return [...arguments[0].querySelector('tbody').rows]"
                                ".map(r => [...r.cells].map(c => c.textContent));", box))
    assert box.get_attribute("data-matches") == "3"
    assert [r[0] for r in rows()] == sorted("/" + o["path"] for o in overrides)   # by path
    field.send_keys("user.keep.2")                        # the reason column is searched
    assert rows() == [["/var/cache/apt/keep/a.deb", "caches.apt-archives",
                       "kept by user.keep.2"]]
    field.clear()
    field.send_keys("DOCS.")                              # the rule column, any case
    assert box.get_attribute("data-matches") == "2"
    assert {r[0] for r in rows()} == {"/usr/share/doc/keep/NOTE", "/" + KEPT_XSS}
    field.clear()
    field.send_keys("onerror")                            # a name that is markup is text
    assert [r[0] for r in rows()] == ["/" + KEPT_XSS]
    field.clear()
    field.send_keys(" ")
    assert box.get_attribute("data-matches") == "3"
    reason = box.find_elements(By.CSS_SELECTOR, "th button")[2]
    reason.click()
    assert [r[2] for r in rows()] == ["kept by user.keep.1"] * 2 + ["kept by user.keep.2"]
    reason.click()
    assert [r[2] for r in rows()][0] == "kept by user.keep.2"
    assert box.find_elements(By.CSS_SELECTOR, "th")[2].get_attribute("aria-sort") == \
        "descending"
    assert console_errors(driver) == [] and alert_text(driver) is None


def test_coldstart_page(driver: Any, tmp_path: Path) -> None:
    measured = comparison(source="oci:/tmp/<img src=x onerror=alert(4)>:v1")
    measured.images.append(did_not_start(output=("<script>alert(5)</script>", "giving up")))
    out = tmp_path / "coldstart.html"
    write_coldstart_html(measured, str(out))
    driver.get(out.as_uri())
    assert alert_text(driver) is None and console_errors(driver) == []
    assert _js(driver, "return performance.getEntriesByType('resource').length") == 0
    assert _js(driver, "return document.querySelectorAll('img, [onerror]').length") == 0
    table = list(_js(driver, """
        return [...document.querySelectorAll('table.coldstart tbody tr')]
            .map(r => [...r.cells].map(c => c.innerText));"""))
    assert [r[0] for r in table] == ["[1] (source)", "[2] (result)", "[3]"]   # no ratio of 3
    assert table[0][1].startswith("oci:/tmp/<img src=x onerror=alert(4)>:v1")
    assert table[0][9:] == ["11.0 s", "13.0 s"] and table[1][9:] == ["6.0 s", "7.0 s"]
    assert _js(driver, "return document.querySelector('pre.output').textContent") == \
        "<script>alert(5)</script>\ngiving up"
    source, result = _bar_lengths(driver)
    assert result / source == pytest.approx(6 / 11, abs=0.01)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "html-coldstart.png"))
    assert console_errors(driver) == [] and alert_text(driver) is None
