"""Library API: ``slim`` and ``analyze``; the CLI and the hook are thin fronts over these."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from slimmer.build.assemble import build_index
from slimmer.build.cache import LayerCache
from slimmer.build.output import repeat, variant_plans, write_manifests
from slimmer.build.reuse import LayerBuilder
from slimmer.codec.result import LayerResult
from slimmer.errors import UsageError
from slimmer.fs.index import LayerIndex
from slimmer.fs.scan import scan_layer
from slimmer.oci.digest import sha256_digest
from slimmer.oci.image import FormatLimits, Image, ReadsCurrent, Root, Sink, Source
from slimmer.oci.media import ANNOT_OPTIONS_DIGEST, ANNOT_SOURCE_DIGEST
from slimmer.oci.model import Descriptor, Platform
from slimmer.oci.refs import RegistryRef, parse_reference
from slimmer.options import SlimOptions, options_digest
from slimmer.plan.grouping import group_layers
from slimmer.plan.image import plan_image
from slimmer.plan.model import PASSTHROUGH, RECOMPRESS, ImagePlan, OutputLayer, PlanOptions
from slimmer.profiles import SNIFF_BYTES, Matcher, Profile, builtin_profiles, select_profiles
from slimmer.report.model import ImageReport, Report
from slimmer.report.summary import image_report
from slimmer.transports import open_sink, open_source
from slimmer.trust.options import TrustOptions

if TYPE_CHECKING:
    from slimmer.transports.registry.options import RegistryOptions

ProgressFn = Callable[[str, int, int], None]


@dataclass
class _Job:
    """Shared state of one run: the pool and the progress callback."""

    pool: ThreadPoolExecutor
    workers: int
    progress: ProgressFn | None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _matcher(options: SlimOptions) -> tuple[list[Profile], Matcher | None]:
    profiles = select_profiles(list(options.profiles), list(options.profile_files))
    if not profiles and not options.strip:
        return profiles, None
    return profiles, Matcher(profiles, list(options.strip), list(options.keep))


def _scan_all(images: Sequence[Image], needed: Sequence[bool], matcher: Matcher | None,
              job: _Job) -> list[dict[int, LayerIndex] | None]:
    """Scan every layer of the images that need it, each distinct digest once, in parallel.
    File heads are sniffed only when ``matcher`` has content rules."""
    sniff = None
    sniff_min = 0
    if matcher is not None and matcher.needs_content():
        from slimmer.profiles import sniff_content
        sniff = sniff_content
        sniff_min = matcher.min_content_size
    futures: dict[str, Any] = {}
    for image, need in zip(images, needed):
        if not need:
            continue
        for layer in image.layers:
            d = layer.descriptor.digest
            if d not in futures:
                futures[d] = job.pool.submit(scan_layer, layer, sniff, sniff_min, SNIFF_BYTES)
    total = len(futures)
    finished = [0]

    def tick(_: Any) -> None:
        if job.progress is not None:
            with job.lock:
                finished[0] += 1
                job.progress("scan", finished[0], total)

    for f in futures.values():
        f.add_done_callback(tick)
    done = {d: f.result() for d, f in futures.items()}
    out: list[dict[int, LayerIndex] | None] = []
    for image, need in zip(images, needed):
        out.append({i: done[layer.descriptor.digest] for i, layer in enumerate(image.layers)}
                   if need else None)
    return out


def _plan_all(root: Root, options: SlimOptions, matcher: Matcher | None, job: _Job,
              force_scan: bool, sniff_matcher: Matcher | None = None
              ) -> tuple[list[ImagePlan], list[dict[int, LayerIndex] | None]]:
    popts = PlanOptions.of(options)
    needed = []
    for image in root.images:
        sizes = [ly.descriptor.size for ly in image.layers]
        types = [ly.descriptor.media_type for ly in image.layers]
        merged = any(len(g) > 1 for g in group_layers(sizes, types, popts))
        needed.append(force_scan or matcher is not None or merged)
    indexes = _scan_all(root.images, needed, sniff_matcher or matcher, job)
    plans = []
    for image, idx in zip(root.images, indexes):
        plans.append(plan_image([ly.descriptor.size for ly in image.layers],
                                [ly.descriptor.media_type for ly in image.layers],
                                idx, matcher, image.config, popts))
    return plans, indexes


def _prepare(source: str | Source, options: SlimOptions | None,
             registry: RegistryOptions | None
             ) -> tuple[SlimOptions, Source, Root, list[Profile], Matcher | None]:
    """Check the options, resolve the source and compile the profiles: what both fronts do
    before planning."""
    options = options or SlimOptions()
    options.check()
    src = open_source(source, registry)
    root = src.resolve([_platform(p) for p in options.platforms])
    profiles, matcher = _matcher(options)
    return options, src, root, profiles, matcher


def analyze(source: str | Source, options: SlimOptions | None = None, *,
            jobs: int | None = None, progress: ProgressFn | None = None,
            registry: RegistryOptions | None = None) -> Report:
    """Plan and measure what ``slim`` would do, writing nothing."""
    options, src, root, profiles, matcher = _prepare(source, options, registry)
    workers = _jobs(options, jobs)
    with ThreadPoolExecutor(workers) as pool:
        job = _Job(pool, workers, progress)
        # Sniff file heads for every built-in profile so "what if" savings are complete.
        chosen = {p.name for p in profiles}
        everything = Matcher(profiles + [p for name, p in builtin_profiles().items()
                                         if name not in chosen])
        plans, indexes = _plan_all(root, options, matcher, job, force_scan=True,
                                   sniff_matcher=everything)
    others = {name: p for name, p in builtin_profiles().items()
              if name not in {q.name for q in profiles}}
    images = [image_report(image, plan, None, idx, others, options)
              for image, plan, idx in zip(root.images, plans, indexes)]
    return Report("analyze", src.name, None, root.descriptor.digest, None, images,
                  [p.name for p in profiles], _warnings(profiles, root))


def slim(source: str | Source, dest: str | Sink, options: SlimOptions | None = None, *,
         progress: ProgressFn | None = None, registry: RegistryOptions | None = None,
         trust: TrustOptions | None = None, cache: LayerCache | bool = True) -> Report:
    """Slim ``source`` into ``dest``: plan, build layers in parallel, write config, manifests
    and index, then point the destination tag at the result. On any error the destination is
    left as it was and the error is raised.

    ``trust`` (registry references): verify the source's cosign signature before anything is
    pushed; after the tag, attach the report and sign the new digest (``report.attachments``).
    ``cache``: the layer result cache (True: the one in ``$XDG_CACHE_HOME/slimmer``, False:
    none); a layer it knows whose blob the destination has or can mount is not built again.
    """
    if registry is not None and isinstance(source, str) and isinstance(dest, str):
        registry.check_sides(_registry_of(source), _registry_of(dest))
    if trust is not None:
        from slimmer.trust import remote
        (options or SlimOptions()).check()
        trust = trust.load()
        remote.check_targets(trust, source, dest)
    options, src, root, profiles, matcher = _prepare(source, options, registry)
    verified = None
    if trust is not None and trust.verify_keys:
        verified = remote.verify_source(src, root.descriptor.digest, trust, registry)
    sink = open_sink(dest, registry)
    try:
        options, notes = _fit_destination(options, sink, root)
    except BaseException:
        sink.abort()
        raise
    fingerprint = options_digest(options, profiles)
    warnings = _warnings(profiles, root) + notes
    if trust is None or trust.sign_key is None:
        existing = _up_to_date(sink, root.descriptor.digest, fingerprint)
        if existing is not None:
            sink.abort()
            return Report("push", src.name, sink.name, root.descriptor.digest, existing, [],
                          [p.name for p in profiles], warnings + [
                              "destination already holds this source slimmed with these "
                              "options: nothing written"], verified)
    layer_cache = _open_cache(cache)
    try:
        builder = LayerBuilder(sink, layer_cache)
        try:
            pushed = _push(root, options, matcher, sink, fingerprint, progress, builder)
        except BaseException:
            sink.abort()
            raise
        builder.record(pushed.configs)
        if layer_cache is not None and layer_cache.problem:
            warnings.append(layer_cache.problem)
    finally:
        if cache is True and layer_cache is not None:
            layer_cache.close()
    images = pushed.reports(root, options)
    top = pushed.top
    report = Report("push", src.name, sink.name, root.descriptor.digest, top.digest, images,
                    [p.name for p in profiles], warnings, verified)
    if trust is not None:
        report.attachments = remote.publish(report, sink, top, trust, src, options, registry)
    return report


@dataclass
class _Pushed:
    """What a push wrote: per variant the plans and built layers, the manifests in index
    order, and the top descriptor the tag points at."""

    variants: list[list[ImagePlan]]
    indexes: list[dict[int, LayerIndex] | None]
    results: list[list[list[LayerResult]]]
    manifests: list[Descriptor]
    top: Descriptor
    configs: list[str]

    def reports(self, root: Root, options: SlimOptions) -> list[ImageReport]:
        """One image report per written manifest (the zstd twins name their variant)."""
        out = []
        count = len(root.images)
        for v, (plans, results) in enumerate(zip(self.variants, self.results)):
            for n, (image, plan, res, idx) in enumerate(zip(root.images, plans, results,
                                                            self.indexes)):
                out.append(image_report(image, plan, res, idx, {}, options,
                                        manifest=self.manifests[v * count + n],
                                        variant=options.variants[v] if v else None))
        return out


def _push(root: Root, options: SlimOptions, matcher: Matcher | None, sink: Sink,
          fingerprint: str, progress: ProgressFn | None, builder: LayerBuilder) -> _Pushed:
    """Plan, build every variant's layers, write configs, manifests and the index, and
    commit the tag; the caller aborts the sink on any error."""
    workers = _jobs(options, None)
    with ThreadPoolExecutor(workers) as pool:
        job = _Job(pool, workers, progress)
        plans, indexes = _plan_all(root, options, matcher, job, force_scan=False)
        variants = variant_plans(root, plans, indexes, options)
        built = _build_all(repeat(root, len(variants)), [p for v in variants for p in v],
                           sink, options, job, builder)
    count = len(plans)
    results = [built[i * count:(i + 1) * count] for i in range(len(variants))]
    manifests, configs = write_manifests(root, variants, results, sink, options, fingerprint,
                                          builder)
    if len(manifests) > 1 or root.index is not None and not options.platforms:
        raw, mt = build_index(root, manifests, fingerprint)
        top = sink.put_manifest(raw, mt)
    else:
        top = Descriptor(manifests[0].media_type, manifests[0].digest, manifests[0].size)
    sink.commit(top)
    return _Pushed(variants, indexes, results, manifests, top, configs)


def _open_cache(cache: LayerCache | bool) -> LayerCache | None:
    if cache is True:
        return LayerCache()
    return cache or None


def _fit_destination(options: SlimOptions, sink: Sink, root: Root
                     ) -> tuple[SlimOptions, list[str]]:
    """The options a destination with format limits (a docker archive) can hold, and a note
    when the compression had to change."""
    if not isinstance(sink, FormatLimits):
        return options, []
    wanted = sink.output_compression(options.compression, len(root.images))
    if wanted == options.compression:
        return options, []
    fitted = dataclasses.replace(options, compression=wanted, level=None)
    shown = "uncompressed" if wanted == "none" else wanted
    return fitted.check(), [f"{sink.name}: layers written {shown}, not "
                            f"{options.compression}, so that docker load reads them "
                            f"(--compression gzip gives a smaller archive)"]


def _up_to_date(sink: Sink, source_digest: str, fingerprint: str) -> str | None:
    """Digest of what the destination tag holds if it is this source slimmed with these
    options (its annotations say so), else None."""
    raw = sink.current() if isinstance(sink, ReadsCurrent) else None
    if raw is None:
        return None
    try:
        annotations = json.loads(raw).get("annotations") or {}
    except (ValueError, AttributeError):
        return None
    if annotations.get(ANNOT_SOURCE_DIGEST) == source_digest and \
            annotations.get(ANNOT_OPTIONS_DIGEST) == fingerprint:
        return sha256_digest(raw)
    return None


def _build_all(root: Root, plans: Sequence[ImagePlan], sink: Sink, options: SlimOptions,
               job: _Job, build: LayerBuilder) -> list[list[LayerResult]]:
    """Build every output layer of every image; identical unchanged layers are built once.
    ``build`` builds one (``build_layer`` behind the layer cache)."""
    futures: dict[Any, Any] = {}
    keys: list[list[Any]] = []
    total = sum(o.input_tar_size or o.input_size for p in plans for o in p.layers)
    done_bytes = [0]

    def progress(n: int) -> None:
        if job.progress is not None:
            with job.lock:
                done_bytes[0] += n
                job.progress("build", done_bytes[0], total)

    # Every compressor may use all cores: zstd workers only run while fed, so a big layer
    # alone gets them all and several layers share them. The output does not depend on it.
    threads = os.cpu_count() or 1
    tasks: dict[Any, tuple[OutputLayer, Image, bool]] = {}
    for ii, (image, plan) in enumerate(zip(root.images, plans)):
        row = []
        for oi, out in enumerate(plan.layers):
            if out.mode in (PASSTHROUGH, RECOMPRESS):
                key: Any = (out.mode, image.layers[out.inputs[0]].descriptor.digest,
                            out.compression)
            else:
                key = (ii, oi)
            tasks.setdefault(key, (out, image, plan.scanned))
            row.append(key)
        keys.append(row)
    # Biggest layers first, so a big one does not start last and run alone at the end; the
    # results are still collected by position.
    for key, (out, image, scanned) in sorted(
            tasks.items(), key=lambda kv: -(kv[1][0].input_tar_size or kv[1][0].input_size)):
        futures[key] = job.pool.submit(build, out, image.layers, sink, scanned=scanned,
                                       level=options.level_for(out.compression),
                                       threads=threads, progress=progress)
    try:
        return [[futures[k].result() for k in row] for row in keys]
    except BaseException:
        for f in futures.values():
            f.cancel()
        raise


def _registry_of(reference: str) -> str | None:
    """``HOST[:PORT]`` of a registry reference string, None for a layout."""
    parsed = parse_reference(reference)
    return parsed.registry if isinstance(parsed, RegistryRef) else None


def _jobs(options: SlimOptions, jobs: int | None) -> int:
    return jobs or options.jobs or os.cpu_count() or 1


def _platform(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _warnings(profiles: Sequence[Profile], root: Root) -> list[str]:
    out = [f"profile {p.name}: {p.warning}" for p in profiles if p.warning]
    if root.skipped:
        out.append(f"{len(root.skipped)} index entries not slimmed and left out "
                   "(other platforms or attestations)")
    return out


__all__ = ["LayerCache", "SlimOptions", "TrustOptions", "analyze", "open_sink", "open_source",
           "slim"]
