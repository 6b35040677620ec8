"""Run plan + pipeline + assemble over an in-memory image (no profiles module needed)."""

from __future__ import annotations

from typing import Any, Sequence

from slimmer.build.assemble import build_config, build_manifest, config_media_type
from slimmer.build.layer import build_layer
from slimmer.fs.scan import scan_layer
from slimmer.plan.image import plan_image
from slimmer.plan.model import PlanOptions

from support.memimage import MemSink, MemSource


def run(tars: Sequence[bytes], options: PlanOptions, matcher: Any = None,
        config: dict[str, Any] | None = None, sniff: Any = None,
        history: list[dict[str, Any]] | None = None,
        explain: Sequence[str] = ()) -> tuple[MemSink, Any]:
    """Plan and build; the closure's facts are collected when something may be stripped,
    as ``slimmer.slim`` does."""
    src = MemSource(tars, config, history=history)
    image = src.image
    facts = matcher is not None or bool(explain)
    hash_min = options.dedupe_min_size if options.dedupe else None
    indexes = {i: scan_layer(ly, sniff, 0, 4096, closure_facts=facts, hash_min=hash_min)
               for i, ly in enumerate(image.layers)}
    plan = plan_image([ly.descriptor.size for ly in image.layers],
                      [ly.descriptor.media_type for ly in image.layers],
                      indexes, matcher, image.config, options, explain)
    sink = MemSink()
    results = [build_layer(out, image.layers, sink) for out in plan.layers]
    cfg = sink.put_manifest(build_config(image, plan, results), config_media_type(image, results))
    raw, mt = build_manifest(image, plan, results, cfg, options.base)
    sink.commit(sink.put_manifest(raw, mt))
    return sink, plan
