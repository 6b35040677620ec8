"""Summaries of a planned (and possibly built) image for the report."""

from __future__ import annotations

from typing import Mapping, Sequence

from slimmer.build.estimate import estimate_tar_size
from slimmer.codec.result import LayerResult
from slimmer.fs.index import LayerIndex
from slimmer.oci.image import Image
from slimmer.oci.model import Descriptor
from slimmer.options import SlimOptions
from slimmer.plan.image import removable_bytes
from slimmer.plan.model import PASSTHROUGH, ImagePlan, PlanOptions
from slimmer.profiles import Matcher, Profile
from slimmer.report.model import LARGEST, ImageReport, LayerReport


def image_report(image: Image, plan: ImagePlan, results: Sequence[LayerResult] | None,
                 indexes: Mapping[int, LayerIndex] | None,
                 other_profiles: Mapping[str, Profile], options: SlimOptions,
                 manifest: Descriptor | None = None, variant: str | None = None) -> ImageReport:
    """Summarise one planned (and possibly built) image; ``variant`` names the added
    compression variant of a gzip+zstd result."""
    layers = []
    for n, out in enumerate(plan.layers):
        res = results[n] if results is not None else None
        layers.append(LayerReport(
            inputs=[{"index": i, "digest": image.layers[i].descriptor.digest,
                     "size": image.layers[i].descriptor.size} for i in out.inputs],
            mode=out.mode, compression=out.compression, size_before=out.input_size,
            size_after=res.size if res else None, tar_before=out.input_tar_size,
            tar_after=res.tar_size if res else (
                estimate_tar_size(out, indexes) if indexes is not None else out.input_tar_size),
            digest=res.digest if res else None, diff_id=res.diff_id if res else None,
            removed_files=len(out.removed), removed_bytes=out.removed_bytes,
            whiteouts=list(out.whiteouts),
            level=None if out.mode == PASSTHROUGH else options.level_for(out.compression),
            cached=bool(res and res.from_cache)))
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
        for name, profile in other_profiles.items():
            others[name] = removable_bytes(
                [ly.descriptor.media_type for ly in image.layers],
                indexes, Matcher([profile]), image.config, PlanOptions.of(options))
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
        protected=plan.protected, other_profiles=others, variant=variant)
