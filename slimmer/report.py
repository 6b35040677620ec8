"""What a run removed and saved: per output layer, per rule and profile, largest files, bytes
wasted in the input. Rendered as a human table or as JSON (schema ``slimmer.report/v1``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

from .compress import LayerResult
from .digest import short
from .image import Image
from .model import Descriptor
from .plan import ImagePlan, removable_bytes
from .scan import LayerIndex

SCHEMA = "slimmer.report/v1"
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
    overrides: list[dict[str, str]]
    protected: list[str]
    other_profiles: dict[str, int] = field(default_factory=dict)


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

    @property
    def size_before(self) -> int:
        return sum(i.size_before for i in self.images)

    @property
    def size_after(self) -> int | None:
        sizes = [i.size_after for i in self.images]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; see README "Report JSON" for the schema."""
        doc = asdict(self)
        del doc["attachments"]
        return {"schema": SCHEMA, **doc, "size_before": self.size_before,
                "size_after": self.size_after}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Report":
        """The inverse of ``to_dict`` (e.g. for a report fetched from a registry); raises
        ValueError when ``doc`` is not a ``slimmer.report/v1`` document."""
        if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document")
        try:
            images = [ImageReport(**{**_pick(ImageReport, img),
                                     "layers": [LayerReport(**_pick(LayerReport, ly))
                                                for ly in img["layers"]]})
                      for img in doc["images"]]
            return cls(**{**_pick(cls, doc, {"images", "attachments"}), "images": images})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed {SCHEMA} document ({exc})") from exc

    def render_text(self) -> str:
        """Human summary."""
        lines: list[str] = []
        verb = "slimmed" if self.mode == "push" else "analysis of"
        head = f"{verb} {self.source}"
        if self.destination:
            head += f" -> {self.destination}"
        lines.append(head)
        lines.append(f"profiles: {', '.join(self.profiles) or 'none'}")
        for img in self.images:
            lines.append("")
            title = f"image {img.platform or ''} {short(img.source_digest)}".replace("  ", " ")
            if img.digest:
                title += f" -> {short(img.digest)}"
            lines.append(title)
            lines.append(f"  {'layer':>5}  {'from':<14} {'mode':<11} {'before':>10} "
                         f"{'after':>10} {'tar before':>11} {'tar after':>11} {'removed':>9}")
            for n, ly in enumerate(img.layers):
                src = ",".join(str(i["index"]) for i in ly.inputs)
                lines.append(
                    f"  {n:>5}  {src:<14} {ly.mode:<11} {human(ly.size_before):>10} "
                    f"{human(ly.size_after):>10} {human(ly.tar_before):>11} "
                    f"{human(ly.tar_after):>11} {human(ly.removed_bytes):>9}")
            if img.size_after is not None:
                lines.append(f"  total: {human(img.size_before)} -> {human(img.size_after)} "
                             f"compressed; removed {img.removed_files} files, "
                             f"{human(img.removed_bytes)} uncompressed")
            else:
                tar_after = sum(ly.tar_after or 0 for ly in img.layers)
                lines.append(f"  total: {human(img.size_before)} compressed now; tar "
                             f"{human(sum(ly.tar_before or 0 for ly in img.layers))} -> "
                             f"{human(tar_after)}; would remove {img.removed_files} files, "
                             f"{human(img.removed_bytes)}")
            if img.removed_by_profile:
                lines.append("  removed by profile:")
                for name, v in sorted(img.removed_by_profile.items(), key=lambda x: -x[1]["bytes"]):
                    lines.append(f"    {name:<20} {v['files']:>7} files {human(v['bytes']):>10}")
                lines.append("  removed by rule:")
                for name, v in sorted(img.removed_by_rule.items(), key=lambda x: -x[1]["bytes"]):
                    lines.append(f"    {name:<36} {v['files']:>7} files {human(v['bytes']):>10}")
            if img.largest_removed:
                lines.append("  largest removed files:")
                for f in img.largest_removed:
                    lines.append(f"    {human(f['size']):>10}  /{f['path']}  ({f['rule']})")
            if img.wasted_bytes:
                lines.append(f"  wasted in the input (overwritten or deleted by later layers): "
                             f"{human(img.wasted_bytes)}")
            protected = [o for o in img.overrides if not o["reason"].startswith("kept by ")]
            for o in protected[:20]:
                lines.append(f"  kept /{o['path']}: rule {o['rule']} overridden ({o['reason']})")
            if len(protected) > 20:
                lines.append(f"  ... and {len(protected) - 20} more protected paths")
            by_keep: dict[tuple[str, str], int] = {}
            for o in img.overrides:
                if o["reason"].startswith("kept by "):
                    key = (o["rule"], o["reason"][len("kept by "):])
                    by_keep[key] = by_keep.get(key, 0) + 1
            for (rule, keep), count in sorted(by_keep.items()):
                lines.append(f"  kept {count} files matched by {rule}: keep rule {keep}")
            if img.other_profiles:
                lines.append("  profiles not chosen would also remove:")
                for name, size in sorted(img.other_profiles.items()):
                    lines.append(f"    {name:<20} {human(size):>10}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        for sig in self.source_signatures or ():
            lines.append(f"source signature verified: key {str(sig.get('key_id'))[:16]} "
                         f"({sig.get('algorithm')}), signed {sig.get('docker_reference')}")
        if self.digest:
            lines.append(f"digest: {self.digest}")
        for att in self.attachments:
            lines.append(f"{att.kind}: {att.reference}" + (f" ({att.note})" if att.note else ""))
        return "\n".join(lines) + "\n"


def _pick(cls: Any, doc: Mapping[str, Any], skip: set[str] | None = None) -> dict[str, Any]:
    """The dataclass fields of ``cls`` present in ``doc`` (missing ones must have defaults)."""
    if not isinstance(doc, Mapping):
        raise TypeError(f"{cls.__name__}: not an object")
    skip = skip or set()
    return {f.name: doc[f.name] for f in fields(cls) if f.name in doc and f.name not in skip}


def human(n: int | None) -> str:
    """Bytes in binary units: 1.5 MiB."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def image_report(image: Image, plan: ImagePlan, results: Sequence[LayerResult] | None,
                 indexes: Mapping[int, LayerIndex] | None, other_profiles: Mapping[str, Any],
                 options: Any, manifest: Descriptor | None = None) -> ImageReport:
    """Summarise one planned (and possibly built) image."""
    layers = []
    for n, out in enumerate(plan.layers):
        res = results[n] if results is not None else None
        layers.append(LayerReport(
            inputs=[{"index": i, "digest": image.layers[i].descriptor.digest,
                     "size": image.layers[i].descriptor.size} for i in out.inputs],
            mode=out.mode, compression=out.compression, size_before=out.input_size,
            size_after=res.size if res else None, tar_before=out.input_tar_size,
            tar_after=res.tar_size if res else out.output_tar_size,
            digest=res.digest if res else None, diff_id=res.diff_id if res else None,
            removed_files=len(out.removed), removed_bytes=out.removed_bytes,
            whiteouts=list(out.whiteouts)))
    by_rule: dict[str, dict[str, int]] = {}
    by_profile: dict[str, dict[str, int]] = {}
    removed = plan.removed
    for r in removed:
        for key, table in ((r.rule, by_rule), (r.rule.split(".", 1)[0], by_profile)):
            slot = table.setdefault(key, {"files": 0, "bytes": 0})
            slot["files"] += 1
            slot["bytes"] += r.size
    largest = sorted(removed, key=lambda r: (-r.size, r.path))[:LARGEST]
    others: dict[str, int] = {}
    if indexes is not None and other_profiles:
        from .profiles import Matcher
        for name, profile in other_profiles.items():
            others[name] = removable_bytes(
                [ly.descriptor.size for ly in image.layers],
                [ly.descriptor.media_type for ly in image.layers],
                indexes, Matcher([profile]), image.config, options.plan_options())
    wasted = None if any(w is None for w in plan.wasted) else sum(
        w for w in plan.wasted if w is not None)
    platform = image.platform
    return ImageReport(
        platform=str(platform) if platform else None,
        source_digest=image.descriptor.digest,
        digest=manifest.digest if manifest else None,
        layers=layers,
        size_before=sum(ly.descriptor.size for ly in image.layers),
        size_after=sum(r.size for r in results) if results is not None else None,
        removed_bytes=sum(r.size for r in removed), removed_files=len(removed),
        removed_by_rule=by_rule, removed_by_profile=by_profile,
        largest_removed=[{"path": r.path, "size": r.size, "rule": r.rule, "layer": r.layer}
                         for r in largest],
        removed=[{"path": r.path, "size": r.size, "rule": r.rule, "layer": r.layer,
                  "shadowed": r.shadowed}
                 for r in sorted(removed, key=lambda r: (r.path, r.layer))],
        wasted_bytes=wasted, wasted_by_layer=list(plan.wasted),
        overrides=[{"path": o.path, "rule": o.rule, "reason": o.reason} for o in plan.overrides],
        protected=plan.protected, other_profiles=others)
