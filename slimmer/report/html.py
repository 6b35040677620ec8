"""The report as one self-contained HTML page (``--html FILE``): a summary, a zoomable treemap
of the input's files coloured by fate, per-layer bars, tables of removed files and overrides,
what the profiles not chosen would save, and the cold start of source and result when it was
measured (``report.coldstart_html``). Everything comes from the ``Report``.

The page works offline and loads nothing, and names from the image are text, never markup:
the shell, the escaping and the atomic write are ``report.markup``'s, shared with the
cold-start page.

A page is a header plus, per image, the ``image_sections`` in order; a front with more
results passes its own section functions after the default ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from slimmer.oci.digest import short
from slimmer.report.coldstart_html import coldstart_section, summary_rows
from slimmer.report.markup import display, esc, json_block, page_shell, swatch, write_atomic
from slimmer.report.model import SCHEMA, ImageReport, Report
from slimmer.report.tree import Fate, profile_of, removed_fate
from slimmer.report.treemap import Treemap
from slimmer.units import format_size
from slimmer.version import slimmer_version

__all__ = ["IMAGE_SECTIONS", "ImageSection", "Page", "display", "esc", "render_html",
           "write_atomic", "write_html"]

#: At most this many removed files (the largest) and overrides go into a page's tables; the
#: JSON report lists all of them.
TABLE_ROWS = 20_000

FIXED_COLOURS = {Fate.KEPT: "#b8c2cc", Fate.PROTECTED: "#3a9d5d", Fate.SHADOWED: "#e7b416"}
PROFILE_COLOURS = ("#d9534f", "#8e6bbf", "#ff7f0e", "#e377c2", "#17becf", "#8c564b",
                   "#bcbd22", "#1f77b4")


@dataclass
class Page:
    """What the sections of one page share: the report, fate colours, unique ids."""

    report: Report
    colours: dict[str, str] = field(default_factory=dict)
    _next: int = 0

    @property
    def analyze(self) -> bool:
        return self.report.mode == "analyze"

    def new_id(self, kind: str) -> str:
        self._next += 1
        return f"{kind}{self._next}"

    def data_table(self, columns: list[dict[str, Any]], rows: list[list[Any]], *,
                   sort: int | None, desc: bool, note: str = "", label: str) -> str:
        """A filterable, sortable table: its rows as JSON, drawn by the page's script.
        Columns: ``label``, ``text`` (index of the shown cell), ``sort`` (index of the sort
        key), ``num`` (right-aligned), ``search`` (the filter looks at it)."""
        data_id = self.new_id("data")
        doc = {"columns": columns, "rows": rows, "sort": sort, "desc": desc}
        note_html = f'<p class="note">{esc(note)}</p>' if note else ""
        return (f'<div class="datatable" data-src="{data_id}">{note_html}'
                f'<div class="tools"><input type="search" placeholder="filter" '
                f'aria-label="{esc(label)}"><span class="count"></span></div></div>'
                f'<script type="application/json" id="{data_id}">{json_block(doc)}</script>')


ImageSection = Callable[[Page, ImageReport], str]


def fate_label(fate: str, analyze: bool) -> str:
    """The legend's words for a fate."""
    verb = "would be removed" if analyze else "removed"
    if fate == Fate.KEPT:
        return "kept"
    if fate == Fate.PROTECTED:
        return "protected (a strip rule matched; a keep rule or the static closure won)"
    if fate == Fate.SHADOWED:
        return f"{verb}, not visible in the input (shadowed by a later layer)"
    return f"{verb} by {fate.partition(':')[2]}"


def fate_colours(report: Report) -> dict[str, str]:
    """One colour per fate; each profile that removed something gets its own."""
    profiles = sorted({profile_of(r["rule"]) for img in report.images for r in img.removed}
                      | {f.partition(":")[2] for img in report.images if img.tree
                         for f in img.tree["bytes"] if f.startswith(f"{Fate.REMOVED}:")})
    colours = {str(k): v for k, v in FIXED_COLOURS.items()}
    for n, name in enumerate(profiles):
        colours[removed_fate(name)] = PROFILE_COLOURS[n % len(PROFILE_COLOURS)]
    return colours


def section_summary(page: Page, img: ImageReport) -> str:
    """Bytes before and after, compressed and unpacked; files; layers; the cold start when
    it was measured (``slim push --coldstart``); what went."""
    tar_before = sum(ly.tar_before or 0 for ly in img.layers)
    tar_after = sum(ly.tar_after or 0 for ly in img.layers)
    inputs = sum(len(ly.inputs) for ly in img.layers)
    after = "(not built: analyze)" if img.size_after is None else format_size(img.size_after)
    rows = [("compressed", format_size(img.size_before), after),
            ("unpacked (tar)", format_size(tar_before),
             format_size(tar_after) + (" (estimate)" if page.analyze else "")),
            ("layers", str(inputs), str(len(img.layers)))]
    if img.tree is not None:
        counts = img.tree["files"]
        visible = sum(n for f, n in counts.items() if f != Fate.SHADOWED)
        kept = counts.get(Fate.KEPT, 0) + counts.get(Fate.PROTECTED, 0)
        rows.append(("files", f"{visible:,}", f"{kept:,}"))
    measured = page.report.coldstart
    if measured is not None:
        rows.extend(summary_rows(measured, img.source_digest, img.digest))
    body = "".join(f'<tr><th>{esc(k)}</th><td class="num">{esc(b)}</td>'
                   f'<td class="num">{esc(a)}</td></tr>' for k, b, a in rows)
    verb = "would remove" if page.analyze else "removed"
    extra = [f"{verb} {img.removed_files:,} files, {format_size(img.removed_bytes)} "
             "(uncompressed)"]
    if img.wasted_bytes:
        extra.append(f"wasted in the input (overwritten or deleted by later layers): "
                     f"{format_size(img.wasted_bytes)}")
    notes = "".join(f'<p class="meta">{esc(t)}</p>' for t in extra)
    return (f'<h3>Summary</h3><table class="summary"><thead><tr><th></th>'
            f'<th class="num">before</th><th class="num">after</th></tr></thead>'
            f'<tbody>{body}</tbody></table>{notes}')


def section_treemap(page: Page, img: ImageReport) -> str:
    """The zoomable treemap of the input's files, coloured by fate."""
    head = "<h3>Where the bytes go</h3>"
    if img.tree is None:
        return head + '<p class="empty">No file tree: the layers were not scanned (nothing ' \
                      'was stripped or merged).</p>'
    if img.tree["root"]["size"] == 0:
        return head + '<p class="empty">This image has no files.</p>'
    used = set(img.tree["bytes"])
    legend = "".join(f'<li data-fate="{esc(f)}">{swatch(c)}<span>{esc(fate_label(f, page.analyze))}'
                     f'</span></li>' for f, c in page.colours.items() if f in used)
    treemap = Treemap(img.tree, page.colours, esc, page.new_id("tm"))
    cut = format_size(img.tree["cut"])
    return (f'{head}<ul class="legend">{legend}</ul>'
            f'<div class="treemap"><nav class="crumbs" aria-label="directory"></nav>'
            f'{treemap.svg()}<div class="info"></div></div>'
            f'<p class="note">Click a directory to zoom in, a name above to go back. Sized '
            f'by file bytes; entries under {esc(cut)} are drawn together per directory.</p>')


def _bars(pairs: list[tuple[int | None, int | None, int]]) -> str:
    """Before/after bar pairs, each scaled to its own maximum."""
    width, bar, gap = 220, 7, 3
    parts = []
    y = 0
    for before, after, top in pairs:
        for value, cls in ((before, "bar-before"), (after, "bar-after")):
            if value is not None and top:
                w = max(1.0, width * value / top) if value else 0
                parts.append(f'<rect class="{cls}" x="0" y="{y}" width="{w:.1f}" '
                             f'height="{bar}"/>')
            y += bar + 1
        y += gap
    return f'<svg width="{width}" height="{y}" viewBox="0 0 {width} {y}">{"".join(parts)}</svg>'


def section_layers(page: Page, img: ImageReport) -> str:
    """Each output layer: sources, mode, sizes before and after as bars."""
    top_c = max((ly.size_before for ly in img.layers), default=0)
    top_t = max((ly.tar_before or 0 for ly in img.layers), default=0)
    rows = []
    for n, ly in enumerate(img.layers):
        sources = "<br>".join(f"{i['index']}: {esc(short(i['digest']))}" for i in ly.inputs)
        bars = _bars([(ly.size_before, ly.size_after, top_c),
                      (ly.tar_before, ly.tar_after, top_t)])
        rows.append(
            f'<tr><td class="num">{n}</td><td>{sources}</td><td>{esc(ly.mode)}</td>'
            f'<td class="num">{esc(format_size(ly.size_before))} &rarr; '
            f'{esc(format_size(ly.size_after))}</td>'
            f'<td class="num">{esc(format_size(ly.tar_before))} &rarr; '
            f'{esc(format_size(ly.tar_after))}</td>'
            f'<td class="num">{esc(format_size(ly.removed_bytes))}</td><td>{bars}</td></tr>')
    if not rows:
        return '<h3>Layers</h3><p class="empty">This image has no layers.</p>'
    return ('<h3>Layers</h3><table class="bars"><thead><tr><th class="num">#</th>'
            '<th>from input layers</th><th>mode</th><th class="num">compressed</th>'
            '<th class="num">unpacked</th><th class="num">removed</th>'
            '<th>before (grey) / after (blue): compressed, unpacked</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def section_removed(page: Page, img: ImageReport) -> str:
    """The removed files: path, size, rule, layer, shadowed."""
    head = "<h3>Removed files</h3>" if not page.analyze else "<h3>Files it would remove</h3>"
    if not img.removed:
        return head + '<p class="empty">Nothing removed.</p>'
    biggest = sorted(img.removed, key=lambda r: (-r["size"], r["path"]))[:TABLE_ROWS]
    rows = [["/" + display(r["path"]), r["size"], format_size(r["size"]), display(r["rule"]),
             r["layer"], "yes" if r.get("shadowed") else ""] for r in biggest]
    note = "" if len(img.removed) <= TABLE_ROWS else (
        f"The {TABLE_ROWS:,} largest of {len(img.removed):,} removed files; the JSON report "
        "(--json) lists all.")
    columns = [{"label": "path", "text": 0, "sort": 0, "search": True},
               {"label": "size", "text": 2, "sort": 1, "num": True},
               {"label": "rule", "text": 3, "sort": 3, "search": True},
               {"label": "input layer", "text": 4, "sort": 4, "num": True},
               {"label": "shadowed", "text": 5, "sort": 5}]
    return head + page.data_table(columns, rows, sort=1, desc=True, note=note,
                                  label="filter removed files")


def section_overrides(page: Page, img: ImageReport) -> str:
    """Strip rules that matched but were overruled, and why."""
    if not img.overrides:
        return ""
    rows = [["/" + display(o["path"]), display(o["rule"]), display(o["reason"])]
            for o in img.overrides[:TABLE_ROWS]]
    note = "" if len(img.overrides) <= TABLE_ROWS else (
        f"The first {TABLE_ROWS:,} of {len(img.overrides):,}; the JSON report lists all.")
    columns = [{"label": "path", "text": 0, "sort": 0, "search": True},
               {"label": "rule", "text": 1, "sort": 1, "search": True},
               {"label": "reason", "text": 2, "sort": 2, "search": True}]
    return "<h3>Kept although a rule matched</h3>" + page.data_table(
        columns, rows, sort=0, desc=False, note=note, label="filter overrides")


def section_other_profiles(page: Page, img: ImageReport) -> str:
    """What each profile not chosen would also remove (analyze)."""
    if not img.other_profiles:
        return ""
    top = max(img.other_profiles.values(), default=0)
    rows = "".join(
        f'<tr><td>{esc(name)}</td><td class="num">{esc(format_size(size))}</td>'
        f'<td>{_bars([(None, size, top)])}</td></tr>'
        for name, size in sorted(img.other_profiles.items(), key=lambda kv: (-kv[1], kv[0])))
    return ('<h3>Profiles not chosen would also remove</h3><table class="bars"><tbody>'
            f'{rows}</tbody></table>')


IMAGE_SECTIONS: tuple[ImageSection, ...] = (
    section_summary, section_treemap, section_layers, section_removed, section_overrides,
    section_other_profiles)


def _header(report: Report) -> str:
    title = "slimmer report: " + ("analysis" if report.mode == "analyze" else "push")
    lines = [("source", report.source + f" ({report.source_digest})")]
    if report.destination:
        lines.append(("destination", report.destination +
                      (f" ({report.digest})" if report.digest else "")))
    lines.append(("profiles", ", ".join(report.profiles) or "none"))
    for sig in report.source_signatures or ():
        lines.append(("source signature", f"key {str(sig.get('key_id'))[:16]} "
                                          f"({sig.get('algorithm')}), signed "
                                          f"{sig.get('docker_reference')}"))
    for att in report.attachments:
        lines.append((att.kind, att.reference + (f" ({att.note})" if att.note else "")))
    meta = "".join(f'<p class="meta"><b>{esc(k)}:</b> {esc(v)}</p>' for k, v in lines)
    warnings = "".join(f'<p class="meta warn">warning: {esc(w)}</p>' for w in report.warnings)
    return f"<header><h1>{esc(title)}</h1>{meta}{warnings}</header>"


def render_html(report: Report, *,
                image_sections: Sequence[ImageSection] = IMAGE_SECTIONS) -> str:
    """The whole page as text."""
    page = Page(report)
    page.colours = fate_colours(report)
    body = [_header(report)]
    if not report.images:
        body.append('<p class="empty">This report lists no images (nothing was slimmed; see '
                    'the warnings above).</p>')
    for img in report.images:
        title = f"image {img.platform or ''} {short(img.source_digest)}".replace("  ", " ")
        if img.digest:
            title += f" \u2192 {short(img.digest)}"
        body.append(f'<section class="image"><h2>{esc(title)}</h2>')
        body.extend(section(page, img) for section in image_sections)
        body.append("</section>")
    if report.coldstart is not None:
        body.append('<section class="coldstart"><h2>Cold start: source and result</h2>'
                    f'{coldstart_section(report.coldstart)}</section>')
    body.append(f'<p class="note">slimmer {esc(slimmer_version())}, {esc(SCHEMA)}</p>')
    return page_shell("slimmer report: " + report.source, "".join(body))


def write_html(report: Report, path: str, *,
               image_sections: Sequence[ImageSection] = IMAGE_SECTIONS) -> None:
    """Render the page and write it to ``path`` atomically (temp file, then rename): a
    failure leaves no page, or the old one, never half of one. Raises OSError."""
    write_atomic(path, render_html(report, image_sections=image_sections).encode("utf-8"))
