"""The human form of a cold-start measurement: one column per image, one row per quantity,
and the ratio to the first image when two are compared."""

from __future__ import annotations

import shlex
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


def _footnote(report: ColdstartReport) -> str:
    how = ("the runs pull from a private registry on 127.0.0.1"
           if report.runtime == "containerd" else
           "the proxy copies blobs from the source: a local read for a layout")
    return (f"* modelled: total + compressed bytes / {format_bandwidth(report.bandwidth)} "
            f"({how})")


def _seconds(value: float | None) -> str:
    return "-" if value is None else format_duration(value)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


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
    rows: list[tuple[str, Callable[[ImageColdstart], float | None], Callable[..., str]]] = [
        ("compressed", lambda i: i.compressed_bytes, lambda v: format_size(int(v))),
        ("unpacked", lambda i: i.unpacked_bytes, lambda v: format_size(int(v))),
        ("files", lambda i: i.files, lambda v: f"{int(v):,}"),
        ("layers", lambda i: i.layers, lambda v: str(int(v))),
        ("pull", lambda i: i.median("pull"), _seconds),
        ("unpack", lambda i: i.median("unpack"), _seconds),
        ("start", lambda i: i.median("start"), _seconds),
        ("total", lambda i: i.median("total"), _seconds),
        (f"at {format_bandwidth(report.bandwidth)}*",
         lambda i: i.modelled_total(report.bandwidth), _seconds),
    ]
    pair = len(report.images) == 2
    head = f"  {'':<18}" + "".join(f"{f'[{n}]':>14}" for n in range(1, len(report.images) + 1))
    lines.append(head + (f"{'[2]/[1]':>10}" if pair else ""))
    for label, get, fmt in rows:
        values = [get(i) if i.runs or label in ("compressed", "unpacked", "files", "layers")
                  else None for i in report.images]
        cells = "".join(f"{('-' if v is None else fmt(v)):>14}" for v in values)
        ratio = f"{_ratio(values[1], values[0]):>10}" if pair else ""
        lines.append(f"  {label:<18}{cells}{ratio}")
    lines.append(f"  {_footnote(report)}")
    for n, img in enumerate(report.images, 1):
        if img.ok:
            continue
        lines.append(f"  [{n}] did not start: {img.error or 'no run finished'}")
        if img.output:
            lines.append("      last lines of its output:")
            lines.extend(f"        {line}" for line in img.output)
    return "".join(f"{indent}{line}\n" for line in lines)
