"""One run over a resolved image: scan the layers that need it (each distinct digest once, in
parallel, biggest first), plan every platform image, and build every output layer, taking the
layers that were built during their scan (``build.speculate``) where the plan agrees."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from slimmer.build.assemble import build_index
from slimmer.build.layer import build_layer
from slimmer.build.output import repeat, variant_plans, write_manifests
from slimmer.build.progress import ProgressFn, counted, finishing, layer_ticker
from slimmer.build.reuse import LayerBuilder
from slimmer.build.speculate import Speculation
from slimmer.codec.result import LayerResult
from slimmer.fs.index import LayerIndex
from slimmer.fs.scan import scan_layer
from slimmer.oci.digest import short
from slimmer.oci.image import Image, Root, Sink
from slimmer.oci.media import FOREIGN_LAYER_TYPES, Compression, layer_compression
from slimmer.oci.model import Descriptor
from slimmer.options import KEEP, SlimOptions
from slimmer.plan.grouping import group_layers, kept_layers
from slimmer.plan.image import plan_image
from slimmer.plan.model import PASSTHROUGH, RECOMPRESS, ImagePlan, OutputLayer, PlanOptions
from slimmer.profiles import SNIFF_BYTES, Matcher

Indexes = Mapping[int, LayerIndex]


@dataclass
class Run:
    """Shared state of one run: the pool, the progress callback, the speculative builds."""

    pool: ThreadPoolExecutor
    workers: int
    progress: ProgressFn | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    speculations: dict[str, Speculation] = field(default_factory=dict)

    def discard(self) -> None:
        """Drop every speculative build that was not taken (their blobs never appear)."""
        for speculation in self.speculations.values():
            speculation.discard()

    def ticker(self, stage: str, name: str, total: int) -> Callable[[int | None], None] | None:
        """Per-layer progress for a LayerProgress callback (None for others)."""
        return layer_ticker(self.progress, self.lock, stage, name, total)

    def tick(self, stage: str, done: list[int], amount: int, total: int) -> None:
        if self.progress is not None:
            with self.lock:
                done[0] += amount
                self.progress(stage, done[0], total)


def _threads() -> int:
    # Every compressor may use all cores: zstd workers only run while fed, so a big layer
    # alone gets them all and several layers share them. The output does not depend on it.
    return os.cpu_count() or 1


def _speculable(root: Root, options: SlimOptions, needed: Sequence[bool],
                builder: LayerBuilder | None = None) -> set[str]:
    """Digests of layers worth building during their scan: every image that has the layer
    keeps it a group of its own that is not passed through as it is, the output
    compression (of the first variant) differs from the layer's (so even an unchanged layer
    is written anew), and the layer cache does not expect to have its result already."""
    if options.compression == KEEP or options.dedupe:
        return set()   # --dedupe: which files have twins is known only after the whole scan
    popts = PlanOptions.of(options)
    target = Compression(options.variants[0])
    ok: dict[str, bool] = {}
    for image, need in zip(root.images, needed):
        if not need:
            continue
        types = [ly.descriptor.media_type for ly in image.layers]
        groups = group_layers([ly.descriptor.size for ly in image.layers], types, popts)
        alone = {g[0] for g in groups if len(g) == 1} - kept_layers(types, popts)
        for i, layer in enumerate(image.layers):
            digest = layer.descriptor.digest
            fits = (i in alone and types[i] not in FOREIGN_LAYER_TYPES
                    and layer_compression(types[i]) != target)
            ok[digest] = ok.get(digest, True) and fits
    return {d for d, fits in ok.items() if fits and not (
        builder is not None and builder.expects(_layer_of(root, d), target,
                                                options.level_for(target)))}


def _layer_of(root: Root, digest: str) -> Any:
    """The first layer of ``root`` with this digest."""
    return next(ly for image in root.images for ly in image.layers
                if ly.descriptor.digest == digest)


def scan_images(images: Sequence[Image], needed: Sequence[bool], matcher: Matcher | None,
                run: Run, strip: Matcher | None = None, closure_facts: bool = False,
                cuda: bool = False, hash_min: int | None = None
                ) -> list[dict[int, LayerIndex] | None]:
    """Scan every layer of the images that need it, each distinct digest once, in parallel,
    biggest first. File heads are sniffed only when ``matcher`` has content rules; layers
    with a speculation in ``run`` are built in the same pass with ``strip``'s decisions; the
    static closure's facts are collected in the same pass when ``closure_facts``, and the
    fat binaries of ELF files when ``cuda``; files of at least ``hash_min`` bytes are hashed
    (for --dedupe)."""
    sniff = None
    sniff_min = 0
    if matcher is not None and matcher.needs_content():
        from slimmer.profiles import sniff_content
        sniff = sniff_content
        sniff_min = matcher.min_content_size
    layers: dict[str, tuple[int, Any]] = {}
    for image, need in zip(images, needed):
        if need:
            for n, layer in enumerate(image.layers):
                layers.setdefault(layer.descriptor.digest, (n, layer))
    futures: dict[str, Any] = {}
    done = [0]
    for digest, (n, layer) in sorted(layers.items(), key=lambda kv: -kv[1][1].descriptor.size):
        tick = run.ticker("scan", f"layer {n} {short(digest)}", layer.descriptor.size)
        futures[digest] = run.pool.submit(
            finishing(scan_layer, tick), counted(layer, tick) if tick else layer, sniff,
            sniff_min, SNIFF_BYTES, run.speculations.get(digest), closure_facts, cuda,
            hash_min)
        futures[digest].add_done_callback(
            lambda _: run.tick("scan", done, 1, len(layers)))
    scanned = {d: f.result() for d, f in futures.items()}
    for digest, speculation in run.speculations.items():
        if digest in scanned:
            scanned[digest].matched_by = speculation.matcher
    return [{i: scanned[layer.descriptor.digest] for i, layer in enumerate(image.layers)}
            if need else None for image, need in zip(images, needed)]


def plan_images(root: Root, options: SlimOptions, matcher: Matcher | None, run: Run,
                force_scan: bool, sniff_matcher: Matcher | None = None,
                sink: Sink | None = None, explain: Sequence[str] = (),
                builder: LayerBuilder | None = None
                ) -> tuple[list[ImagePlan], list[dict[int, LayerIndex] | None]]:
    """Scan what needs it and plan every image. With a ``sink`` (a push), layers that allow
    it are built during their scan, to be taken by ``build_images``. The closure's facts are
    collected when something may be stripped (or for analyze), so analyze and push plan from
    the same data; ``explain``: paths whose fate each plan's ``why`` describes."""
    popts = PlanOptions.of(options)
    needed = []
    for image in root.images:
        sizes = [ly.descriptor.size for ly in image.layers]
        types = [ly.descriptor.media_type for ly in image.layers]
        merged = any(len(g) > 1 for g in group_layers(sizes, types, popts))
        needed.append(force_scan or matcher is not None or merged or bool(options.cuda_arch)
                      or options.dedupe)
    if sink is not None and options.compression != KEEP:
        layers = {ly.descriptor.digest: ly for image in root.images for ly in image.layers}
        target = Compression(options.variants[0])
        for digest in _speculable(root, options, needed, builder):
            run.speculations[digest] = Speculation(
                layers[digest], sink, target, options.level_for(target),
                _threads(), matcher, cuda=bool(options.cuda_arch))
    indexes = scan_images(root.images, needed, sniff_matcher or matcher, run, matcher,
                          closure_facts=force_scan or matcher is not None,
                          cuda=bool(options.cuda_arch),
                          hash_min=options.dedupe_min_size if options.dedupe else None)
    plans = [plan_image([ly.descriptor.size for ly in image.layers],
                        [ly.descriptor.media_type for ly in image.layers],
                        idx, matcher, image.config, popts, explain)
             for image, idx in zip(root.images, indexes)]
    return plans, indexes


def build_images(root: Root, plans: Sequence[ImagePlan], indexes: Sequence[Indexes | None],
                 sink: Sink, options: SlimOptions, run: Run,
                 builder: LayerBuilder | None = None) -> list[list[LayerResult]]:
    """Build every output layer of every image; identical unchanged layers are built once,
    layers built during their scan are taken where the plan agrees, and ``builder`` (the
    layer cache in front of ``build_layer``) reuses blobs the destination already has."""
    build = builder or build_layer
    total = sum(o.input_tar_size or o.input_size for p in plans for o in p.layers)
    done = [0]

    def progress(n: int) -> None:
        run.tick("build", done, n, total)

    tasks: dict[Any, tuple[OutputLayer, Image, bool, str]] = {}
    keys: list[list[Any]] = []
    taken: dict[Any, LayerResult] = {}
    for ii, (image, plan, idx) in enumerate(zip(root.images, plans, indexes)):
        row = []
        where = f"{image.platform} " if len(root.images) > 1 and image.platform else ""
        for oi, out in enumerate(plan.layers):
            name = f"{where}layer {oi} ({out.mode})"
            if out.mode in (PASSTHROUGH, RECOMPRESS):
                key: Any = (out.mode, image.layers[out.inputs[0]].descriptor.digest,
                            out.compression)
            else:
                key = (ii, oi)
            row.append(key)
            if key in tasks or key in taken:
                continue
            result = _taken(out, image, idx, run)
            if result is not None:
                taken[key] = result
                if builder is not None:
                    builder.built(out, image.layers, options.level_for(out.compression), result)
                tick = run.ticker("build", name, out.input_tar_size or out.input_size)
                progress(out.input_tar_size or out.input_size)
                if tick is not None:
                    tick(None)
            else:
                checked = plan.scanned and idx is not None and all(
                    idx[j].diff_id is not None for j in out.inputs)
                tasks[key] = (out, image, checked, name)
        keys.append(row)
    futures: dict[Any, Any] = {}
    # Biggest layers first, so a big one does not start last and run alone at the end; the
    # results are still collected by position.
    for key, (out, image, scanned, name) in sorted(
            tasks.items(), key=lambda kv: -(kv[1][0].input_tar_size or kv[1][0].input_size)):
        tick = run.ticker("build", name, out.input_tar_size or out.input_size)
        futures[key] = run.pool.submit(
            finishing(build, tick), out, image.layers, sink, scanned=scanned,
            level=options.level_for(out.compression), threads=_threads(),
            progress=_both(progress, tick))
    try:
        return [[taken[k] if k in taken else futures[k].result() for k in row] for row in keys]
    except BaseException:
        for f in futures.values():
            f.cancel()
        raise


def _both(progress: Callable[[int], None], tick: Callable[[int | None], None] | None
          ) -> Callable[[int], None]:
    if tick is None:
        return progress

    def both(n: int) -> None:
        progress(n)
        tick(n)
    return both


def _taken(out: OutputLayer, image: Image, indexes: Indexes | None, run: Run
           ) -> LayerResult | None:
    """The layer built during its scan, if there is one and the plan agrees with it."""
    if len(out.inputs) != 1 or indexes is None:
        return None
    speculation = run.speculations.get(image.layers[out.inputs[0]].descriptor.digest)
    if speculation is None:
        return None
    recs = [indexes[i].entries for i in range(len(image.layers))]
    return speculation.take(out, recs)


@dataclass
class Pushed:
    """What a push wrote: per compression variant the plans and built layers, the manifests
    in index order, the top descriptor the tag is to point at, and the config digests."""

    variants: list[list[ImagePlan]]
    indexes: list[dict[int, LayerIndex] | None]
    results: list[list[list[LayerResult]]]
    manifests: list[Descriptor]
    top: Descriptor
    configs: list[str]


def push_images(root: Root, options: SlimOptions, matcher: Matcher | None, sink: Sink,
                fingerprint: str, workers: int, progress: ProgressFn | None,
                builder: LayerBuilder) -> Pushed:
    """Scan, plan and build every variant's layers (building in the scan's pass where the
    plan allows), then write configs, manifests and the index; nothing is tagged: the
    caller commits (or aborts) the sink."""
    with ThreadPoolExecutor(workers) as pool:
        run = Run(pool, workers, progress)
        try:
            plans, indexes = plan_images(root, options, matcher, run, force_scan=False,
                                         sink=sink, builder=builder)
            variants = variant_plans(root, plans, indexes, options)
            built = build_images(repeat(root, len(variants)), [p for v in variants for p in v],
                                 indexes * len(variants), sink, options, run, builder)
        finally:
            run.discard()
    count = len(plans)
    results = [built[i * count:(i + 1) * count] for i in range(len(variants))]
    manifests, configs = write_manifests(root, variants, results, sink, options, fingerprint,
                                         builder)
    if len(manifests) > 1 or root.index is not None and not options.platforms:
        raw, mt = build_index(root, manifests, fingerprint)
        top = sink.put_manifest(raw, mt)
    else:
        top = Descriptor(manifests[0].media_type, manifests[0].digest, manifests[0].size)
    return Pushed(variants, indexes, results, manifests, top, configs)
