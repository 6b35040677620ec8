"""The result of a cold-start measurement: per image its sizes and the times of every run,
medians, the total modelled for a node bandwidth; JSON form (schema ``slimmer.coldstart/v1``).
Plain data: the report of ``slim push --coldstart`` embeds it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

SCHEMA = "slimmer.coldstart/v1"
#: How many lines of a failed image's output are kept.
TAIL_LINES = 20


@dataclass(frozen=True)
class RunTimes:
    """One cold run, in seconds: ``start`` is None where the runtime does not run the image
    (the built-in proxy)."""

    pull: float
    unpack: float
    start: float | None

    @property
    def total(self) -> float:
        return self.pull + self.unpack + (self.start or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"pull": self.pull, "unpack": self.unpack, "start": self.start,
                "total": self.total}


def _median(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


@dataclass
class ImageColdstart:
    """One image: what was measured (reference, digest, platform), its sizes (compressed
    layer bytes as pulled; unpacked = regular-file bytes of every layer, as the overlay
    snapshotter stores them; files = entries of every layer, whiteouts excluded) and its
    runs. ``error`` and ``output`` (its last lines) say why it did not start."""

    image: str
    digest: str
    platform: str | None
    compressed_bytes: int
    unpacked_bytes: int
    files: int
    layers: int
    runs: list[RunTimes] = field(default_factory=list)
    role: str | None = None            # "source" / "result" in ``slim push --coldstart``
    error: str | None = None
    output: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.runs)

    def median(self, phase: str) -> float | None:
        """Median of ``pull``, ``unpack``, ``start`` or ``total`` over the runs."""
        return _median([getattr(r, phase) for r in self.runs])

    def modelled_total(self, bandwidth: float) -> float | None:
        """Median total plus the time ``compressed_bytes`` take at ``bandwidth`` bytes/s: the
        runs pull over loopback, so this adds the network a node would see."""
        total = self.median("total")
        return None if total is None else total + self.compressed_bytes / bandwidth

    def to_dict(self, bandwidth: float) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "runs"}
        doc["runs"] = [r.to_dict() for r in self.runs]
        doc["median"] = {p: self.median(p) for p in ("pull", "unpack", "start", "total")}
        doc["modelled_total"] = self.modelled_total(bandwidth)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "ImageColdstart":
        runs = [RunTimes(r["pull"], r["unpack"], r.get("start")) for r in doc.get("runs", [])]
        names = {f.name for f in fields(cls)} - {"runs"}
        return cls(**{k: v for k, v in doc.items() if k in names}, runs=runs)


@dataclass
class ColdstartReport:
    """A whole measurement: the runtime (``containerd`` or ``proxy``, with its version and,
    for the proxy, why it was used), the settings and one entry per image."""

    runtime: str
    runtime_version: str | None
    note: str | None
    tmpfs: bool
    runs: int
    bandwidth: float                   # bytes per second, for the modelled total
    readiness: str
    cmd: list[str]
    ready_log: str | None
    ready_url: str | None
    timeout: float
    images: list[ImageColdstart] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.images)

    @property
    def failed(self) -> list[ImageColdstart]:
        return [i for i in self.images if not i.ok]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; see README "Cold start" for the schema."""
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "images"}
        doc["images"] = [i.to_dict(self.bandwidth) for i in self.images]
        return {"schema": SCHEMA, **doc}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "ColdstartReport":
        """The inverse of ``to_dict``; ValueError when ``doc`` is not such a document."""
        if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document")
        try:
            names = {f.name for f in fields(cls)} - {"images"}
            return cls(**{k: v for k, v in doc.items() if k in names},
                       images=[ImageColdstart.from_dict(i) for i in doc["images"]])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed {SCHEMA} document ({exc})") from exc

    def render_text(self) -> str:
        from slimmer.coldstart.text import render_text
        return render_text(self)
