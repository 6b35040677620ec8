"""The plan: a pure function from (layer sizes and types, layer indexes, rules, config,
options) to what to build.

For every output layer it says which input layers it comes from, whether it is passed through
byte-identical, recompressed, or rebuilt, and, for rebuilt layers, what happens to each input
entry (copied, dropped, renamed, relinked, fetched) and which header-only entries (hoisted
directories, whiteouts) come first. The build executes it; nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from slimmer.fs.closure import Closure, compute_closure
from slimmer.fs.index import LayerIndex
from slimmer.fs.stack import Stack, walk_stack
from slimmer.globs import compile_glob
from slimmer.oci.layer import FILE
from slimmer.oci.media import FOREIGN_LAYER_TYPES, layer_compression
from slimmer.plan.cuda import decide_rewrites
from slimmer.plan.dedupe import cross_layer_copies
from slimmer.plan.emit import GroupPlanner, LowerPaths
from slimmer.plan.grouping import group_layers, kept_layers
from slimmer.plan.model import (
    PASSTHROUGH,
    REBUILD,
    RECOMPRESS,
    ImagePlan,
    LayerReason,
    OutputLayer,
    PlanOptions,
)
from slimmer.plan.stream import StreamingPlanner
from slimmer.plan.strip import decide_strips
from slimmer.plan.why import explain_path
from slimmer.profiles import Matcher


def image_closure(stack: Stack, indexes: Mapping[int, LayerIndex], config: Any | None,
                  options: PlanOptions) -> Closure:
    """What the image needs at run time (``fs.closure``), from the scan's facts."""
    facts = [indexes[i].facts for i in range(len(indexes))]
    return compute_closure(stack, [indexes[i].entries for i in range(len(indexes))], facts,
                           config, options.keep)


def plan_image(sizes: Sequence[int], media_types: Sequence[str],
               indexes: Mapping[int, LayerIndex] | None, matcher: Matcher | None,
               config: Any | None, options: PlanOptions,
               explain: Sequence[str] = ()) -> ImagePlan:
    """Plan one image. ``indexes`` maps every input layer to its scan (None: nothing scanned,
    only allowed without stripping or merging); ``config`` (an ImageConfig) names what the
    image runs: the closure computed from it is never stripped (unless --no-protect says
    so). ``explain``: image paths whose fate the plan's ``why`` describes."""
    n = len(sizes)
    groups = group_layers(sizes, media_types, options)
    kept = kept_layers(media_types, options)
    if indexes is None:
        if matcher is not None or options.cuda_arch or any(len(g) > 1 for g in groups):
            raise ValueError("stripping, merging or --cuda-arch needs layer indexes")
        layers = [unchanged_layer(g[0], sizes, media_types, None, options) for g in groups]
        return ImagePlan(layers, [], [], [None] * n, scanned=False)

    recs = [indexes[i].entries for i in range(n)]
    stack = walk_stack(recs)
    closure = image_closure(stack, indexes, config, options) \
        if matcher is not None or explain else None
    no_protect = [compile_glob(g) for g in options.no_protect]
    matcher = for_image(matcher, stack)
    strips = decide_strips(stack, recs, kept, matcher, closure or Closure(), no_protect,
                           [indexes[i].matched_by for i in range(n)])
    rewrites, cuda = decide_rewrites(stack, recs, kept, set(strips.dropped), options)
    out: list[OutputLayer] = []
    lower = LowerPaths()
    for group in groups:
        layer = None
        if len(group) > 1:
            layer = GroupPlanner(group, recs, indexes, stack, strips, lower, options,
                                 rewrites).plan(sizes)
        elif group[0] not in kept:
            layer = StreamingPlanner(group, recs, indexes, stack, strips, lower,
                                     options, rewrites).plan(sizes)
        out.append(layer or unchanged_layer(group[0], sizes, media_types, indexes[group[0]],
                                             options))
        for j in group:
            lower.add_layer(recs[j])
    plan = ImagePlan(out, strips.overrides, sorted(closure or ()), stack.wasted, scanned=True,
                     final=stack.final, forced=strips.forced,
                     warnings=list(closure.warnings) if closure else [], closure=closure,
                     cuda=cuda)
    if options.dedupe:
        output_of = {j: k for k, layer in enumerate(out) for j in layer.inputs}
        visible = {ref: recs[ref[0]][ref[1]] for ref in stack.final.entries.values()
                   if ref not in strips.dropped and ref not in rewrites}
        plan.cross_layer = cross_layer_copies(visible, output_of, options.dedupe_min_size)
    for path in explain:
        plan.why[path] = explain_path(path, stack, recs, kept, matcher, strips,
                                      closure or Closure(), plan)
    return plan


def for_image(matcher: Matcher | None, stack: Stack) -> Matcher | None:
    """``matcher`` with its conditional rules decided for the image's final tree."""
    if matcher is None:
        return None
    return matcher.for_image("/" + path for path in stack.final.entries if path)


def unchanged_layer(i: int, sizes: Sequence[int], media_types: Sequence[str],
                    index: LayerIndex | None, options: PlanOptions) -> OutputLayer:
    """Input layer ``i`` as it is: passed through, or recompressed to the output compression."""
    source = index.compression if index is not None else layer_compression(media_types[i])
    target = options.output_compression(source)
    foreign = media_types[i] in FOREIGN_LAYER_TYPES
    mode = PASSTHROUGH if (target == source or foreign) else RECOMPRESS
    tar = index.tar_size if index is not None else None
    return OutputLayer((i,), mode, source if mode == PASSTHROUGH else target, sizes[i], tar,
                       reason=LayerReason.FOREIGN if foreign else LayerReason.NONE)


def variant_plan(plan: ImagePlan, sizes: Sequence[int], media_types: Sequence[str],
                 indexes: Mapping[int, LayerIndex] | None, options: PlanOptions) -> ImagePlan:
    """``plan`` written with ``options.compression`` instead (the zstd variant of gzip+zstd):
    rebuilt layers keep their recipe, unchanged layers are passed through or recompressed as
    the new compression needs. Strip and merge decisions are those of ``plan``."""
    layers = []
    for out in plan.layers:
        if out.mode == REBUILD:
            layers.append(dataclasses.replace(
                out, compression=options.output_compression(out.compression)))
        else:
            i = out.inputs[0]
            layers.append(unchanged_layer(i, sizes, media_types,
                                          indexes[i] if indexes is not None else None, options))
    return dataclasses.replace(plan, layers=layers)


def removable_bytes(media_types: Sequence[str], indexes: Mapping[int, LayerIndex],
                    matchers: Mapping[str, Matcher], config: Any | None, options: PlanOptions,
                    closure: Closure | None = None) -> dict[str, int]:
    """Uncompressed file bytes each matcher would remove from the image (for "what if"
    reports); the closure (computed once unless given) protects as in a real run."""
    recs = [indexes[i].entries for i in range(len(media_types))]
    stack = walk_stack(recs)
    if closure is None:
        closure = image_closure(stack, indexes, config, options)
    no_protect = [compile_glob(g) for g in options.no_protect]
    kept = kept_layers(media_types, options)
    out = {}
    for name, matcher in matchers.items():
        strips = decide_strips(stack, recs, kept, for_image(matcher, stack), closure,
                               no_protect)
        out[name] = sum(recs[j][o].size for (j, o) in strips.dropped if recs[j][o].kind == FILE)
    return out
