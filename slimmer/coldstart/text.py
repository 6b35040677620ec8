"""The human form of a cold-start measurement: one column per image, one row per quantity,
and the ratio to the first image when two are compared. The quantities, their labels and
formats, and the runtime's description are shared with the HTML page."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Callable

from slimmer.coldstart.model import ColdstartReport, ImageColdstart
from slimmer.coldstart.options import Readiness
from slimmer.oci.digest import short
from slimmer.units import format_bandwidth, format_duration, format_size


def describe_runtime(report: ColdstartReport) -> str:
    """``containerd 1.6.20 + runc, root on a tmpfs`` or the proxy with the reason it is used."""
    if report.runtime == "containerd":
        where = "root on a tmpfs" if report.tmpfs else "root on disk"
        return f"containerd {report.runtime_version or '?'} + runc, {where}"
    text = "built-in proxy (pull + decompress + untar; the image is not run)"
    return text + (f": {report.note}" if report.note else "")


def describe_readiness(report: ColdstartReport) -> str:
    what = shlex.join(report.cmd) if report.cmd else "the image's own command"
    if report.readiness == Readiness.LOG:
        return f"a line printed by {what} matches {report.ready_log!r}"
    if report.readiness == Readiness.URL:
        return f"{report.ready_url} answers 200-399 ({what}, on the host network)"
    return f"{what} exits 0"


def modelled_note(report: ColdstartReport) -> str:
    """What the modelled total is, and why it differs from the measured one."""
    how = ("the runs pull from a private registry on 127.0.0.1"
           if report.runtime == "containerd" else
           "the proxy copies blobs from the source: a local read for a layout")
    return (f"* modelled: total + compressed bytes / {format_bandwidth(report.bandwidth)} "
            f"({how})")


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``0.66x``, or ``-`` when either is missing."""
    return f"{a / b:.2f}x" if a is not None and b else "-"


@dataclass(frozen=True)
class Quantity:
    """One row of the table: its label, how to read it from an image and how to show it;
    ``timed`` ones have no value for an image that has no run."""

    label: str
    get: Callable[[ImageColdstart], float | None]
    fmt: Callable[[float], str]
    timed: bool = True

    def value(self, img: ImageColdstart) -> float | None:
        return None if self.timed and not img.runs else self.get(img)

    def cell(self, img: ImageColdstart) -> str:
        value = self.value(img)
        return "-" if value is None else self.fmt(value)


def quantities(report: ColdstartReport) -> list[Quantity]:
    """Sizes, median phases, the median total and the total modelled at the bandwidth."""
    return [
        Quantity("compressed", lambda i: i.compressed_bytes, lambda v: format_size(int(v)),
                 False),
        Quantity("unpacked", lambda i: i.unpacked_bytes, lambda v: format_size(int(v)), False),
        Quantity("files", lambda i: i.files, lambda v: f"{int(v):,}", False),
        Quantity("layers", lambda i: i.layers, lambda v: str(int(v)), False),
        Quantity("pull", lambda i: i.median("pull"), format_duration),
        Quantity("unpack", lambda i: i.median("unpack"), format_duration),
        Quantity("start", lambda i: i.median("start"), format_duration),
        Quantity("total", lambda i: i.median("total"), format_duration),
        Quantity(f"at {format_bandwidth(report.bandwidth)}*",
                 lambda i: i.modelled_total(report.bandwidth), format_duration),
    ]


def render_text(report: ColdstartReport, indent: str = "") -> str:
    """The table and its notes; ``indent`` prefixes every line (for embedding)."""
    lines = [f"cold start: {describe_runtime(report)}; {report.runs} run(s) per image, "
             f"alternating, medians"]
    if report.runtime == "containerd":
        lines.append(f"  ready when {describe_readiness(report)}; timeout "
                     f"{format_duration(report.timeout)} per run")
    for n, img in enumerate(report.images, 1):
        role = f" ({img.role})" if img.role else ""
        lines.append(f"  [{n}]{role} {img.image} {short(img.digest)} {img.platform or ''}"
                     .rstrip())
    pair = len(report.images) == 2
    head = f"  {'':<18}" + "".join(f"{f'[{n}]':>14}" for n in range(1, len(report.images) + 1))
    lines.append(head + (f"{'[2]/[1]':>10}" if pair else ""))
    for q in quantities(report):
        cells = "".join(f"{q.cell(i):>14}" for i in report.images)
        values = [q.value(i) for i in report.images]
        last = f"{ratio(values[1], values[0]):>10}" if pair else ""
        lines.append(f"  {q.label:<18}{cells}{last}")
    lines.append(f"  {modelled_note(report)}")
    for n, img in enumerate(report.images, 1):
        if img.ok:
            continue
        lines.append(f"  [{n}] did not start: {img.error or 'no run finished'}")
        if img.output:
            lines.append("      last lines of its output:")
            lines.extend(f"        {line}" for line in img.output)
    return "".join(f"{indent}{line}\n" for line in lines)
