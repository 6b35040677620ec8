"""The report's file tree as a zoomable SVG treemap, laid out on the server by ``squarify``.

Every directory that has children gets one view: its children, and inside each child
directory its children again, all laid out to fill the picture. The page's script only shows
one view at a time (clicking a directory shows its view); it computes no layout.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import squarify

from slimmer.report.tree import NodeKind, walk
from slimmer.units import format_size

WIDTH, HEIGHT = 1200, 600
HEADER = 18          # label band of a child directory drawn with its own children
MIN_NESTED = 36      # a child directory narrower or lower than this is drawn as one block
MIN_LABEL_W, MIN_LABEL_H = 40, 14
CHAR_W = 6.6         # average width of a label character at the page's font size

Escape = Callable[[str], str]


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


class Treemap:
    """Draws the views of one tree; ``colours`` maps fates to fills, ``esc`` makes text safe
    for HTML (names are data from the image)."""

    def __init__(self, tree: Mapping[str, Any], colours: Mapping[str, str], esc: Escape,
                 prefix: str) -> None:
        self.tree = tree
        self.colours = colours
        self.esc = esc
        self.prefix = prefix
        self.ids: dict[int, str] = {}
        self.paths: dict[int, str] = {}
        for path, node in walk(tree["root"]):
            if node["kind"] == NodeKind.DIR and _drawable(node):
                self.ids[id(node)] = f"{prefix}-{len(self.ids)}"
                self.paths[id(node)] = path

    def svg(self) -> str:
        """The ``<svg>`` with every view; the root's view is shown first."""
        parts = [f'<svg class="treemap-svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
                 f'preserveAspectRatio="xMidYMid meet" role="img">']
        parents: dict[int, str] = {}
        for path, node in walk(self.tree["root"]):
            view = self.ids.get(id(node))
            if view is None:
                continue
            for child in node["children"]:
                parents[id(child)] = view
            parts.append(self._view(node, path, view, parents.get(id(node), "")))
        parts.append("</svg>")
        return "".join(parts)

    def _view(self, node: Mapping[str, Any], path: str, view: str, parent: str) -> str:
        name = path.rpartition("/")[2] if path else "/"
        on = " on" if not parent else ""
        out = [f'<g class="view{on}" id="{view}" data-parent="{parent}" '
               f'data-name="{self.esc(name)}" data-path="{self.esc("/" + path)}">']
        for child, (x, y, w, h) in _layout(node["children"], 0, 0, WIDTH, HEIGHT):
            child_path = _join(path, child)
            zoom = self.ids.get(id(child))
            nested = zoom is not None and w >= MIN_NESTED and h >= MIN_NESTED
            attrs = f' data-zoom="{zoom}"' if zoom else ""
            out.append(f'<g class="node {child["kind"]}" data-path="{self.esc(child_path)}"'
                       f'{attrs}>{self._title(child, child_path)}')
            if nested:
                out.append(f'<rect class="frame" x="{_num(x)}" y="{_num(y)}" '
                           f'width="{_num(w)}" height="{_num(h)}"/>')
                for grand, box in _layout(child["children"], x + 1, y + HEADER, w - 2,
                                          h - HEADER - 1):
                    grand_path = _join(child_path.lstrip("/"), grand)
                    out.append(f'<g class="node {grand["kind"]}" '
                               f'data-path="{self.esc(grand_path)}">'
                               f'{self._title(grand, grand_path)}{self._blocks(grand, *box)}'
                               f'{self._label(grand, *box)}</g>')
                out.append(self._label(child, x, y, w, HEADER))
            else:
                out.append(self._blocks(child, x, y, w, h))
                out.append(self._label(child, x, y, w, h))
            out.append("</g>")
        out.append("</g>")
        return "".join(out)

    def _blocks(self, node: Mapping[str, Any], x: float, y: float, w: float, h: float) -> str:
        """The node's rectangle, split by fate (largest first) when it has several."""
        fates = sorted(node["fates"].items(), key=lambda kv: (-kv[1], kv[0]))
        items = [{"size": size, "fate": fate} for fate, size in fates]
        return "".join(
            f'<rect x="{_num(bx)}" y="{_num(by)}" width="{_num(bw)}" height="{_num(bh)}" '
            f'fill="{self.colours.get(item["fate"], "#999")}" '
            f'data-fate="{self.esc(item["fate"])}"/>'
            for item, (bx, by, bw, bh) in _layout(items, x, y, w, h))

    def _label(self, node: Mapping[str, Any], x: float, y: float, w: float, h: float) -> str:
        if w < MIN_LABEL_W or h < MIN_LABEL_H:
            return ""
        text = f"{_name(node)} {format_size(node['size'])}"
        room = int((w - 6) / CHAR_W)
        if len(text) > room:
            text = text[:max(room - 1, 1)] + "\u2026"
        return (f'<text x="{_num(x + 3)}" y="{_num(y + 12)}" class="label">'
                f'{self.esc(text)}</text>')

    def _title(self, node: Mapping[str, Any], path: str) -> str:
        lines = [path if node["kind"] != NodeKind.REST else f"{path} ({node['files']} files)",
                 f"{format_size(node['size'])}, {node['files']} files"]
        for fate, size in sorted(node["fates"].items(), key=lambda kv: -kv[1]):
            lines.append(f"{fate}: {format_size(size)}")
        return f"<title>{self.esc(chr(10).join(lines))}</title>"


def _drawable(node: Mapping[str, Any]) -> bool:
    return any(c["size"] > 0 for c in node.get("children", ()))


def _name(node: Mapping[str, Any]) -> str:
    if node["kind"] == NodeKind.REST:
        return f"({node['files']} smaller)"
    return node["name"] + ("/" if node["kind"] == NodeKind.DIR else "")


def _join(path: str, child: Mapping[str, Any]) -> str:
    name = child["name"] if child["kind"] != NodeKind.REST else "\u2026"
    return f"/{path}/{name}" if path else f"/{name}"


def _layout(items: list[dict[str, Any]], x: float, y: float, w: float, h: float
            ) -> list[tuple[dict[str, Any], tuple[float, float, float, float]]]:
    """Squarified rectangles for the items with bytes (sorted by size, largest first)."""
    sized = sorted((i for i in items if i["size"] > 0), key=lambda i: -i["size"])
    if not sized or w <= 0 or h <= 0:
        return []
    values = squarify.normalize_sizes([i["size"] for i in sized], w, h)
    rects = squarify.squarify(values, x, y, w, h)
    return [(item, (r["x"], r["y"], r["dx"], r["dy"])) for item, r in zip(sized, rects)]
