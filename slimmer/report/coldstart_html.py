"""A cold-start measurement as HTML: the runtime it ran on, a table with one row per image
(sizes, median phases, the median total and the total modelled at the bandwidth) and a bar
chart of each image's phases, stacked. It is a page of its own (``slim coldstart --html``)
and a section of the report page (``slim push --coldstart --html``), whose summary also gets
the before/after totals. The quantities and words are ``coldstart.text``'s, the shell,
escaping and atomic write ``report.markup``'s: one of each.
"""

from __future__ import annotations

from typing import Callable

from slimmer.coldstart.model import SCHEMA, ColdstartReport, ImageColdstart
from slimmer.coldstart.text import (
    describe_readiness,
    describe_runtime,
    modelled_note,
    quantities,
    ratio,
)
from slimmer.oci.digest import short
from slimmer.report.markup import esc, page_shell, swatch, write_atomic
from slimmer.units import format_bandwidth, format_duration
from slimmer.version import slimmer_version

PHASES = ("pull", "unpack", "start")
PHASE_COLOURS = {"pull": "#2f6fb0", "unpack": "#8e6bbf", "start": "#3a9d5d"}
#: The chart's geometry: a bar this long is the longest image's phases.
CHART_WIDTH, BAR, LABEL, GAP = 480, 14, 16, 8


def _name(n: int, img: ImageColdstart) -> str:
    return f"[{n}]" + (f" ({img.role})" if img.role else "")


def runtime_lines(report: ColdstartReport) -> list[str]:
    """Where and how it was measured: runtime, runs, readiness, timeout."""
    lines = [f"{describe_runtime(report)}; {report.runs} run(s) per image, alternating, "
             "medians"]
    if report.runtime == "containerd":
        lines.append(f"ready when {describe_readiness(report)}; timeout "
                     f"{format_duration(report.timeout)} per run")
    return lines


def coldstart_table(report: ColdstartReport) -> str:
    """One row per image, one column per quantity; with two images a ratio row."""
    qs = quantities(report)
    head = "".join(f'<th class="num">{esc(q.label)}</th>' for q in qs)
    rows = []
    for n, img in enumerate(report.images, 1):
        where = " ".join(x for x in (short(img.digest), img.platform or "") if x)
        cells = "".join(f'<td class="num">{esc(q.cell(img))}</td>' for q in qs)
        rows.append(f'<tr><td class="num">{esc(_name(n, img))}</td><td>{esc(img.image)}'
                    f'<br><span class="meta">{esc(where)}</span></td>{cells}</tr>')
    if len(report.images) == 2:
        a, b = report.images
        cells = "".join(f'<td class="num">{esc(ratio(q.value(b), q.value(a)))}</td>'
                        for q in qs)
        rows.append(f'<tr class="ratio"><td class="num">[2]/[1]</td><td></td>{cells}</tr>')
    return (f'<table class="coldstart"><thead><tr><th class="num">#</th><th>image</th>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="note">{esc(modelled_note(report))}</p>')


def coldstart_chart(report: ColdstartReport) -> str:
    """The median of each phase per image, stacked, all bars to one scale; labelled with the
    median total (the median of the runs' totals, which need not be the sum of the phase
    medians)."""
    phases = [[img.median(p) or 0.0 for p in PHASES] for img in report.images]
    top = max((sum(p) for p in phases), default=0.0)
    if not top:
        return ""
    used = [p for k, p in enumerate(PHASES) if any(row[k] for row in phases)]
    parts = []
    y = 0
    for n, (img, row) in enumerate(zip(report.images, phases), 1):
        total = img.median("total")
        label = _name(n, img) + (f" total {format_duration(total)}" if total is not None
                                 else " did not start")
        parts.append(f'<text class="chart-label" x="0" y="{y + LABEL - 4}">{esc(label)}</text>')
        y += LABEL
        x = 0.0
        for phase, value in zip(PHASES, row):
            if not value:
                continue
            w = max(1.0, CHART_WIDTH * value / top)
            parts.append(f'<rect data-phase="{phase}" x="{x:.1f}" y="{y}" width="{w:.1f}" '
                         f'height="{BAR}" fill="{PHASE_COLOURS[phase]}"><title>'
                         f'{esc(f"{phase} {format_duration(value)}")}</title></rect>')
            x += w
        y += BAR + GAP
    legend = "".join(f'<li data-phase="{p}">{swatch(PHASE_COLOURS[p])}<span>{p} (median)'
                     f'</span></li>' for p in used)
    return (f'<ul class="legend">{legend}</ul>'
            f'<svg class="coldstart-chart" role="img" aria-label="cold start per image" '
            f'width="{CHART_WIDTH}" height="{y}" viewBox="0 0 {CHART_WIDTH} {y}">'
            f'{"".join(parts)}</svg>')


def _failures(report: ColdstartReport) -> str:
    out = []
    for n, img in enumerate(report.images, 1):
        if img.ok:
            continue
        out.append(f'<p class="meta warn">{esc(_name(n, img))} did not start: '
                   f'{esc(img.error or "no run finished")}</p>')
        if img.output:
            out.append('<pre class="output">' + "\n".join(esc(line) for line in img.output)
                       + "</pre>")
    return "".join(out)


def coldstart_section(report: ColdstartReport) -> str:
    """Runtime, table, chart and the images that did not start (no heading)."""
    meta = "".join(f'<p class="meta">{esc(line)}</p>' for line in runtime_lines(report))
    return meta + coldstart_table(report) + coldstart_chart(report) + _failures(report)


def summary_rows(report: ColdstartReport, source_digest: str,
                 digest: str | None) -> list[tuple[str, str, str]]:
    """The before/after rows of a push report's image summary: the median total and the
    modelled one of the measured source and result, when this image is the one measured
    (its platform's digests); empty otherwise."""
    source = next((i for i in report.images
                   if i.role == "source" and i.digest == source_digest), None)
    result = next((i for i in report.images
                   if i.role == "result" and digest and i.digest == digest), None)
    if source is None and result is None:
        return []

    def cells(value: Callable[[ImageColdstart], float | None]) -> tuple[str, str]:
        shown = []
        for img in (source, result):
            v = None if img is None else value(img)
            shown.append("-" if v is None else format_duration(v))
        return shown[0], shown[1]

    bw = report.bandwidth
    return [("cold start (median total)", *cells(lambda i: i.median("total"))),
            (f"cold start at {format_bandwidth(bw)} (modelled)",
             *cells(lambda i: i.modelled_total(bw)))]


def render_coldstart_html(report: ColdstartReport) -> str:
    """The whole ``slim coldstart --html`` page as text."""
    names = ", ".join(i.image for i in report.images)
    body = (f'<header><h1>slimmer cold start</h1><p class="meta"><b>images:</b> {esc(names)}'
            f'</p></header><section class="coldstart">{coldstart_section(report)}</section>'
            f'<p class="note">slimmer {esc(slimmer_version())}, {esc(SCHEMA)}</p>')
    return page_shell("slimmer cold start: " + names, body)


def write_coldstart_html(report: ColdstartReport, path: str) -> None:
    """Render the page and write it to ``path`` atomically (temp file, then rename).
    Raises OSError."""
    write_atomic(path, render_coldstart_html(report).encode("utf-8"))
