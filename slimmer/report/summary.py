"""Summaries of a planned (and possibly built) image for the report."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from slimmer.build.estimate import estimate_tar_size
from slimmer.codec.result import LayerResult
from slimmer.fs.index import LayerIndex
from slimmer.gpu.arch import parse_gpus
from slimmer.oci.image import Image
from slimmer.oci.layer import DIR
from slimmer.oci.model import Descriptor
from slimmer.options import SlimOptions
from slimmer.plan.image import removable_bytes
from slimmer.plan.model import PASSTHROUGH, CudaLibrary, CudaStatus, ImagePlan, PlanOptions
from slimmer.profiles import Matcher, Profile, detect_ml
from slimmer.report.model import LARGEST, ImageReport, LayerReport
from slimmer.report.tree import Fate, build_tree, profile_of, removed_fate


def image_report(image: Image, plan: ImagePlan, results: Sequence[LayerResult] | None,
                 indexes: Mapping[int, LayerIndex] | None,
                 other_profiles: Mapping[str, Profile], options: SlimOptions,
                 manifest: Descriptor | None = None, variant: str | None = None,
                 ml_profiles: Sequence[Profile] = ()) -> ImageReport:
    """Summarise one planned (and possibly built) image; ``variant`` names the added
    compression variant of a gzip+zstd result. ``ml_profiles`` (analyze): the profiles of
    category "ml" to list if the image looks like an ML image."""
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
            cached=bool(res and res.from_cache),
            deduped_files=sum(len(g.paths) - 1 for g in out.deduped),
            deduped_bytes=out.deduped_bytes))
    by_rule: dict[str, dict[str, int]] = {}
    by_profile: dict[str, dict[str, int]] = {}
    removed = plan.removed
    for r in removed:
        for key, table in ((r.rule, by_rule), (profile_of(r.rule), by_profile)):
            slot = table.setdefault(key, {"files": 0, "bytes": 0})
            slot["files"] += 1
            slot["bytes"] += r.size
    largest = sorted(removed, key=lambda r: (-r.size, r.path))[:LARGEST]
    others: dict[str, int] = {}
    if indexes is not None and other_profiles:
        others = removable_bytes(
            [ly.descriptor.media_type for ly in image.layers], indexes,
            {name: Matcher([profile]) for name, profile in other_profiles.items()},
            image.config, PlanOptions.of(options), plan.closure)
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
        overrides=[{"path": o.path, "rule": o.rule, "reason": o.reason, "chain": list(o.chain)}
                   for o in plan.overrides],
        protected=plan.protected, other_profiles=others,
        tree=(lambda: build_tree(_fates(plan, indexes)))  # type: ignore[arg-type]
        if plan.final is not None and indexes is not None else None,
        forced=[{"path": f.path, "rule": f.rule, "pattern": f.pattern, "chain": list(f.chain)}
                for f in plan.forced],
        why=dict(plan.why),
        cuda=[_cuda_line(c) for c in plan.cuda],
        cuda_summary=cuda_summary(plan.cuda, options) if options.cuda_arch else None,
        variant=variant,
        dedupe=_dedupe(plan) if options.dedupe else None,
        ml=_ml(plan, ml_profiles, by_profile, others) if ml_profiles else None)


def _fates(plan: ImagePlan, indexes: Mapping[int, LayerIndex]) -> Iterator[tuple[str, int, str]]:
    """Every file of the input's final tree with its size and fate, then the shadowed copies
    the plan removes (bytes the input carried but did not show)."""
    assert plan.final is not None
    removed = {r.path: r.rule for r in plan.removed if not r.shadowed}
    overridden = {o.path for o in plan.overrides}
    for path, (j, o) in plan.final.entries.items():
        rec = indexes[j].entries[o]
        if rec.kind == DIR:
            continue
        rule = removed.get(path)
        if rule is not None:
            fate: str = removed_fate(profile_of(rule))
        elif path in overridden:
            fate = Fate.PROTECTED
        else:
            fate = Fate.KEPT
        yield path, rec.size, fate
    for r in plan.removed:
        if r.shadowed:
            yield r.path, r.size, Fate.SHADOWED


def plan_warnings(plan: ImagePlan, platform: str | None = None) -> list[str]:
    """The warnings of one image's plan: the closure's, and one per --no-protect pattern
    that removes needed paths (with the first of them and its chain)."""
    where = f"{platform}: " if platform else ""
    out = [where + w for w in plan.warnings]
    by_pattern: dict[str, list[Any]] = {}
    for f in plan.forced:
        by_pattern.setdefault(f.pattern, []).append(f)
    for pattern, items in by_pattern.items():
        more = f" and {len(items) - 1} more" if len(items) > 1 else ""
        out.append(f"{where}--no-protect {pattern}: removing /{items[0].path}{more} although "
                   f"the image needs it ({' <- '.join(items[0].chain)})")
    return out


def _cuda_line(c: CudaLibrary) -> dict[str, Any]:
    return {"path": c.path, "layer": c.layer, "size": c.size, "code_before": c.code_before,
            "code_after": c.code_after, "kept": list(c.kept), "dropped": list(c.dropped),
            "status": c.status.value, "detail": c.detail, "shadowed": c.shadowed,
            "in_distribution": c.in_distribution}


def cuda_summary(libraries: Sequence[CudaLibrary], options: SlimOptions) -> dict[str, Any]:
    """Totals of ``--cuda-arch`` for one image."""
    return {
        "gpus": [g.name for g in parse_gpus(options.cuda_arch)], "ptx": not options.no_ptx,
        "libraries": len(libraries),
        "pruned": sum(c.status == CudaStatus.PRUNED for c in libraries),
        "flagged": sum(c.flagged for c in libraries),
        "code_before": sum(c.code_before for c in libraries),
        "code_after": sum(c.code_after for c in libraries),
    }


def cuda_warnings(plans: Sequence[ImagePlan]) -> list[str]:
    """Warnings about files ``--cuda-arch`` left as they were, and about the RECORD files of
    Python distributions whose hashes no longer match the files it rewrote."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    listed = 0
    for plan in plans:
        for c in plan.cuda:
            if c.flagged and (c.path, c.detail) not in seen:
                seen.add((c.path, c.detail))
                out.append(f"CUDA: /{c.path} left unchanged ({c.status.value}): {c.detail}")
            listed += c.status == CudaStatus.PRUNED and c.in_distribution
    if listed:
        out.append(f"CUDA: {listed} pruned files belong to installed Python distributions: "
                   "their size is unchanged but the sha256 in *.dist-info/RECORD no longer "
                   "matches (pip-style RECORD verification will see them changed)")
    return out


def _dedupe(plan: ImagePlan) -> dict[str, Any]:
    """What --dedupe linked, per group, and the identical copies left in different layers."""
    groups: list[dict[str, Any]] = [{"size": g.size, "paths": list(g.paths), "layer": n}
                                    for n, out in enumerate(plan.layers) for g in out.deduped]
    cross = plan.cross_layer or []
    return {"files": sum(len(out.deduped[i].paths) - 1 for out in plan.layers
                         for i in range(len(out.deduped))),
            "bytes": sum(out.deduped_bytes for out in plan.layers), "groups": groups,
            "cross_layer_bytes": sum(c.extra for c in cross),
            "cross_layer": [{"size": c.size, "paths": list(c.paths), "layers": list(c.layers)}
                            for c in cross]}


def _ml(plan: ImagePlan, profiles: Sequence[Profile],
        by_profile: Mapping[str, Mapping[str, int]],
        others: Mapping[str, int]) -> dict[str, Any] | None:
    """For an image that looks like an ML image: its stacks and what each "ml" profile removes
    (chosen) or would remove (not chosen)."""
    if plan.final is None:
        return None
    stacks = detect_ml("/" + p for p in plan.final.entries if p)
    if not stacks:
        return None
    table = {}
    for p in profiles:
        chosen = p.name not in others
        size = by_profile.get(p.name, {}).get("bytes", 0) if chosen else others[p.name]
        table[p.name] = {"bytes": size, "chosen": chosen, "warning": p.warning}
    return {"stacks": stacks, "profiles": table}
