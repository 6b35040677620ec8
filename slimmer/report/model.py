"""The report model: what a run removed and saved, per output layer, per rule and profile,
largest files, bytes wasted in the input, the file tree by fate; JSON form (schema
``slimmer.report/v2``; ``from_dict`` also reads v1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

from slimmer.coldstart.model import ColdstartReport

SCHEMA = "slimmer.report/v2"
#: Schemas ``from_dict`` reads: v1 is v2 without ``tree``.
READS = ("slimmer.report/v1", SCHEMA)
LARGEST = 10


@dataclass
class LayerReport:
    """One output layer: where it came from and its size before and after."""

    inputs: list[dict[str, Any]]
    mode: str
    compression: str
    size_before: int
    size_after: int | None
    tar_before: int | None
    tar_after: int | None
    digest: str | None
    diff_id: str | None
    removed_files: int
    removed_bytes: int
    whiteouts: list[str]
    #: Compression level the layer is (or would be) written with; None when passed through.
    level: int | None = None
    #: Taken from the layer cache: its blob was already at the destination or mounted there.
    cached: bool = False
    deduped_files: int = 0            # files written as hardlinks to an identical one
    deduped_bytes: int = 0


Tree = dict[str, Any]


class _LazyTree:
    """``ImageReport.tree``: the tree, or a function that makes it on first read. A push
    builds the report of every run, but only JSON and HTML read the tree (on the python
    bench image it cost 0.6 s, serially, after the last layer was written)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> Tree | None:
        if obj is None:
            return None          # the dataclass default
        value = obj.__dict__.get(self._slot)
        if callable(value):
            value = obj.__dict__[self._slot] = value()
        return value  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: "Tree | Callable[[], Tree | None] | None") -> None:
        obj.__dict__[self._slot] = value


@dataclass
class ImageReport:
    """One platform image."""

    platform: str | None
    source_digest: str
    digest: str | None
    layers: list[LayerReport]
    size_before: int
    size_after: int | None
    removed_bytes: int
    removed_files: int
    removed_by_rule: dict[str, dict[str, int]]
    removed_by_profile: dict[str, dict[str, int]]
    largest_removed: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    wasted_bytes: int | None
    wasted_by_layer: list[int | None]
    overrides: list[dict[str, Any]]
    protected: list[str]
    other_profiles: dict[str, int] = field(default_factory=dict)
    #: The input's final filesystem by directory, bytes by fate, small entries folded
    #: (``report.tree``); None when nothing was scanned or the report is v1.
    tree: _LazyTree = _LazyTree()
    #: needed paths removed anyway because --no-protect matched them
    forced: list[dict[str, Any]] = field(default_factory=list)
    #: paths asked about (``analyze(..., why=...)``, ``slim analyze --why``) -> their fate
    why: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: With --cuda-arch: one object per file with CUDA fat binaries, and the totals.
    cuda: list[dict[str, Any]] = field(default_factory=list)
    cuda_summary: dict[str, Any] | None = None
    #: For the added variant of ``--compression gzip+zstd`` ("zstd"): the same platform as
    #: the image before it, with other layer blobs. None for the first (gzip) variant.
    variant: str | None = None
    #: --dedupe: {"files", "bytes", "groups": [{"size", "paths", "layer"}],
    #: "cross_layer_bytes", "cross_layer": [{"size", "paths", "layers"}]}; None without it.
    dedupe: dict[str, Any] | None = None
    #: analyze of an ML image: {"stacks": [...], "profiles": {name: {"bytes", "chosen",
    #: "warning"}}} for the profiles of category "ml"; None otherwise.
    ml: dict[str, Any] | None = None


@dataclass(frozen=True)
class Attachment:
    """Something written next to the pushed image: its cosign ``signature`` or the ``report``
    artifact; ``reference`` is where it lives, ``note`` a human detail (key, referrers tag)."""

    kind: str
    reference: str
    digest: str
    note: str = ""


@dataclass
class Report:
    """The result of ``slim`` (mode "push") or ``analyze`` (mode "analyze")."""

    mode: str
    source: str
    destination: str | None
    source_digest: str
    digest: str | None
    images: list[ImageReport]
    profiles: list[str]
    warnings: list[str]
    #: The source signatures checked before slimming (key_id, algorithm, signature,
    #: docker_reference), or None when the source was not verified.
    source_signatures: list[dict[str, Any]] | None = None
    #: Written after the push (signature, report artifact); not part of ``to_dict``.
    attachments: list[Attachment] = field(default_factory=list)
    #: ``slim push --smoke``: the command the result ran before it was tagged (cmd, seconds,
    #: runtime); None (and absent from ``to_dict``) without it.
    smoke: dict[str, Any] | None = None
    #: ``slim push --coldstart``: source and result measured on the same runtime; None (and
    #: absent from ``to_dict``) without it.
    coldstart: ColdstartReport | None = None

    @property
    def size_before(self) -> int:
        return sum(i.size_before for i in self.images if i.variant is None)

    @property
    def size_after(self) -> int | None:
        """Compressed size of the output (of its first variant, when there are two)."""
        sizes = [i.size_after for i in self.images if i.variant is None]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def to_dict(self, run_details: bool = True) -> dict[str, Any]:
        """JSON-ready form; see README "Report JSON" for the schema. ``run_details=False``
        leaves out what describes this run rather than the image (which layers came from the
        layer cache), as the report attached to the image is written."""
        doc = asdict(self)
        for name in ("attachments", "smoke", "coldstart"):
            del doc[name]
        if self.smoke is not None:
            doc["smoke"] = dict(self.smoke)
        if self.coldstart is not None:
            doc["coldstart"] = self.coldstart.to_dict()
        if not run_details:
            for image in doc["images"]:
                for layer in image["layers"]:
                    layer.pop("cached", None)
        return {"schema": SCHEMA, **doc, "size_before": self.size_before,
                "size_after": self.size_after}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Report":
        """The inverse of ``to_dict`` (e.g. for a report fetched from a registry); raises
        ValueError when ``doc`` is not a ``slimmer.report/v1`` or ``v2`` document."""
        if not isinstance(doc, Mapping) or doc.get("schema") not in READS:
            raise ValueError(f"not a {SCHEMA} document")
        try:
            images = [ImageReport(**{**_pick(ImageReport, img),
                                     "layers": [LayerReport(**_pick(LayerReport, ly))
                                                for ly in img["layers"]]})
                      for img in doc["images"]]
            coldstart = doc.get("coldstart")
            return cls(**{**_pick(cls, doc, {"images", "attachments", "coldstart"}),
                          "images": images,
                          "coldstart": None if coldstart is None
                          else ColdstartReport.from_dict(coldstart)})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed {SCHEMA} document ({exc})") from exc

    def render_text(self) -> str:
        """Human summary (see ``report.text``)."""
        from slimmer.report.text import render_text
        return render_text(self)


def _pick(cls: Any, doc: Mapping[str, Any], skip: set[str] | None = None) -> dict[str, Any]:
    """The dataclass fields of ``cls`` present in ``doc`` (missing ones must have defaults)."""
    if not isinstance(doc, Mapping):
        raise TypeError(f"{cls.__name__}: not an object")
    skip = skip or set()
    return {f.name: doc[f.name] for f in fields(cls) if f.name in doc and f.name not in skip}
