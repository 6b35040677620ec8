"""Library API: ``slim`` and ``analyze``; the CLI and the hook are thin fronts over these."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Protocol, Sequence, runtime_checkable

from slimmer.build.assemble import build_config, build_index, build_manifest, config_media_type
from slimmer.build.layer import build_layer
from slimmer.codec.result import LayerResult
from slimmer.errors import UsageError
from slimmer.fs.index import LayerIndex
from slimmer.fs.scan import scan_layer
from slimmer.oci.digest import sha256_digest, short
from slimmer.oci.image import Image, Layer, ReadsCurrent, Root, Sink, Source
from slimmer.oci.media import ANNOT_OPTIONS_DIGEST, ANNOT_SOURCE_DIGEST
from slimmer.oci.model import Descriptor, Platform
from slimmer.options import SlimOptions, options_digest
from slimmer.plan.grouping import group_layers
from slimmer.plan.image import plan_image
from slimmer.plan.model import PASSTHROUGH, RECOMPRESS, ImagePlan, OutputLayer, PlanOptions
from slimmer.profiles import SNIFF_BYTES, Matcher, Profile, builtin_profiles, select_profiles
from slimmer.report.model import Report
from slimmer.report.summary import image_report
from slimmer.transports import open_sink, open_source
from slimmer.trust.options import TrustOptions

if TYPE_CHECKING:
    from slimmer.transports.registry.options import RegistryOptions

#: ``progress(stage, done, total)``: "scan" counts layers, "build" bytes of input tar.
ProgressFn = Callable[[str, int, int], None]


@runtime_checkable
class LayerProgress(Protocol):
    """A progress callback that also follows each layer: ``layer(stage, name, done, total)``
    is called with ``done=0`` when a layer is queued, as its bytes go by ("scan": compressed
    bytes read, "build": input tar bytes), and with ``done == total`` when it is finished.
    Calls come from worker threads, one at a time."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...

    def layer(self, stage: str, name: str, done: int, total: int) -> None: ...


@dataclass
class _Job:
    """Shared state of one run: the pool and the progress callback."""

    pool: ThreadPoolExecutor
    workers: int
    progress: ProgressFn | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def layer_ticker(self, stage: str, name: str, total: int
                     ) -> Callable[[int | None], None] | None:
        """Announce a queued layer to a LayerProgress; returns what to call with each
        amount of bytes done (None: the layer is finished), or None for other callbacks."""
        lp = self.progress
        if not isinstance(lp, LayerProgress):
            return None
        done = [0]

        def tick(n: int | None) -> None:
            with self.lock:
                done[0] = total if n is None else min(done[0] + n, total)
                lp.layer(stage, name, done[0], total)

        tick(0)
        return tick


class _CountedStream:
    """A blob stream that reports the bytes read through it."""

    def __init__(self, raw: BinaryIO, tick: Callable[[int], None]) -> None:
        self._raw = raw
        self._tick = tick

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._tick(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


def _counted(layer: Layer, tick: Callable[[int], None]) -> Layer:
    """``layer`` whose streams report the compressed bytes read."""
    def opener() -> BinaryIO:
        return _CountedStream(layer.open_compressed(), tick)  # type: ignore[return-value]
    return dataclasses.replace(layer, open_compressed=opener)


def _finishing(fn: Callable[..., Any], tick: Callable[[int | None], None] | None
               ) -> Callable[..., Any]:
    """``fn`` that marks its layer finished when it returns."""
    if tick is None:
        return fn

    def run(*args: Any, **kw: Any) -> Any:
        result = fn(*args, **kw)
        tick(None)
        return result
    return run


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
        for n, layer in enumerate(image.layers):
            d = layer.descriptor.digest
            if d not in futures:
                layer_tick = job.layer_ticker("scan", f"layer {n} {short(d)}",
                                              layer.descriptor.size)
                if layer_tick is not None:
                    layer = _counted(layer, layer_tick)
                futures[d] = job.pool.submit(_finishing(scan_layer, layer_tick), layer, sniff,
                                             sniff_min, SNIFF_BYTES)
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
         trust: TrustOptions | None = None) -> Report:
    """Slim ``source`` into ``dest``: plan, build layers in parallel, write config, manifests
    and index, then point the destination tag at the result. On any error the destination is
    left as it was and the error is raised.

    ``trust`` (registry references): verify the source's cosign signature before anything is
    pushed; after the tag, attach the report and sign the new digest (``report.attachments``).
    """
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
    fingerprint = options_digest(options, profiles)
    if trust is None or trust.sign_key is None:
        existing = _up_to_date(sink, root.descriptor.digest, fingerprint)
        if existing is not None:
            sink.abort()
            return Report("push", src.name, sink.name, root.descriptor.digest, existing, [],
                          [p.name for p in profiles], _warnings(profiles, root) + [
                              "destination already holds this source slimmed with these "
                              "options: nothing written"], verified)
    try:
        workers = _jobs(options, None)
        with ThreadPoolExecutor(workers) as pool:
            job = _Job(pool, workers, progress)
            plans, indexes = _plan_all(root, options, matcher, job, force_scan=False)
            results = _build_all(root, plans, sink, options, job)
        manifests: list[Descriptor] = []
        for image, plan, res in zip(root.images, plans, results):
            cfg_raw = build_config(image, plan, res)
            cfg = sink.put_manifest(cfg_raw, config_media_type(image, res))
            man_raw, man_type = build_manifest(image, plan, res, cfg, options.base, fingerprint)
            desc = sink.put_manifest(man_raw, man_type)
            manifests.append(Descriptor(desc.media_type, desc.digest, desc.size, None,
                                        image.descriptor.platform or None))
        if root.index is not None and not (options.platforms and len(manifests) == 1):
            raw, mt = build_index(root, manifests, fingerprint)
            top = sink.put_manifest(raw, mt)
        else:
            top = Descriptor(manifests[0].media_type, manifests[0].digest, manifests[0].size)
        sink.commit(top)
    except BaseException:
        sink.abort()
        raise
    others: dict[str, Profile] = {}
    images = [image_report(image, plan, res, idx, others, options, manifest=m)
              for image, plan, res, idx, m in zip(root.images, plans, results, indexes, manifests)]
    report = Report("push", src.name, sink.name, root.descriptor.digest, top.digest, images,
                    [p.name for p in profiles], _warnings(profiles, root), verified)
    if trust is not None:
        report.attachments = remote.publish(report, sink, top, trust, src, options, registry)
    return report


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
               job: _Job) -> list[list[LayerResult]]:
    """Build every output layer of every image; identical unchanged layers are built once."""
    futures: dict[Any, Any] = {}
    keys: list[list[Any]] = []
    total = sum(o.input_tar_size or o.input_size for p in plans for o in p.layers)
    done_bytes = [0]

    def progress(n: int) -> None:
        if job.progress is not None:
            with job.lock:
                done_bytes[0] += n
                job.progress("build", done_bytes[0], total)

    def layer_progress(out: OutputLayer, name: str) -> tuple[Callable[[int], None],
                                                              Callable[[int | None], None] | None]:
        tick = job.layer_ticker("build", name, out.input_tar_size or out.input_size)
        if tick is None:
            return progress, None

        def both(n: int) -> None:
            progress(n)
            tick(n)
        return both, tick

    # Every compressor may use all cores: zstd workers only run while fed, so a big layer
    # alone gets them all and several layers share them. The output does not depend on it.
    threads = os.cpu_count() or 1
    tasks: dict[Any, tuple[OutputLayer, Image, bool, str]] = {}
    for ii, (image, plan) in enumerate(zip(root.images, plans)):
        row = []
        where = f"{image.platform} " if len(root.images) > 1 and image.platform else ""
        for oi, out in enumerate(plan.layers):
            if out.mode in (PASSTHROUGH, RECOMPRESS):
                key: Any = (out.mode, image.layers[out.inputs[0]].descriptor.digest,
                            out.compression)
            else:
                key = (ii, oi)
            tasks.setdefault(key, (out, image, plan.scanned, f"{where}layer {oi} ({out.mode})"))
            row.append(key)
        keys.append(row)
    # Biggest layers first, so a big one does not start last and run alone at the end; the
    # results are still collected by position.
    for key, (out, image, scanned, name) in sorted(
            tasks.items(), key=lambda kv: -(kv[1][0].input_tar_size or kv[1][0].input_size)):
        feed, tick = layer_progress(out, name)
        futures[key] = job.pool.submit(_finishing(build_layer, tick), out, image.layers, sink,
                                       scanned=scanned, level=options.level, threads=threads,
                                       progress=feed)
    try:
        return [[futures[k].result() for k in row] for row in keys]
    except BaseException:
        for f in futures.values():
            f.cancel()
        raise


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


__all__ = ["LayerProgress", "ProgressFn", "SlimOptions", "TrustOptions", "analyze", "open_sink",
           "open_source", "slim"]
