"""Library API: ``slim`` and ``analyze``; the CLI and the hook are thin fronts over these."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from slimmer.build.assemble import build_config, build_index, build_manifest, config_media_type
from slimmer.build.layer import build_layer
from slimmer.codec.result import LayerResult
from slimmer.coldstart import ColdstartOptions, ColdstartReport, PushChecks
from slimmer.errors import UsageError
from slimmer.fs.index import LayerIndex
from slimmer.fs.scan import scan_layer
from slimmer.oci.digest import sha256_digest
from slimmer.oci.image import Image, ReadsCurrent, Root, Sink, Source, Stages
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
    from slimmer.coldstart.checks import CheckResults
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
         trust: TrustOptions | None = None, checks: PushChecks | None = None) -> Report:
    """Slim ``source`` into ``dest``: plan, build layers in parallel, write config, manifests
    and index, then point the destination tag at the result. On any error the destination is
    left as it was and the error is raised.

    ``trust`` (registry references): verify the source's cosign signature before anything is
    pushed; after the tag, attach the report and sign the new digest (``report.attachments``).
    ``checks``: before the tag, run a smoke command in the result (it must exit 0, else the
    destination is left as it was) and/or measure source and result cold starts
    (``report.smoke``, ``report.coldstart``). Neither changes the output bytes.
    """
    if checks is not None and checks.active:
        from slimmer.coldstart.checks import check_runtime
        (options or SlimOptions()).check()
        check_runtime(checks.check())
    else:
        checks = None
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
    if (trust is None or trust.sign_key is None) and checks is None:
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
        checked = _run_checks(checks, src, sink, top, registry) if checks else None
        sink.commit(top)
    except BaseException:
        sink.abort()
        raise
    others: dict[str, Profile] = {}
    images = [image_report(image, plan, res, idx, others, options, manifest=m)
              for image, plan, res, idx, m in zip(root.images, plans, results, indexes, manifests)]
    report = Report("push", src.name, sink.name, root.descriptor.digest, top.digest, images,
                    [p.name for p in profiles], _warnings(profiles, root), verified)
    if checked is not None:
        report.smoke, report.coldstart = checked.smoke, checked.coldstart
    if trust is not None:
        report.attachments = remote.publish(report, sink, top, trust, src, options, registry)
    return report


def _run_checks(checks: PushChecks, src: Source, sink: Sink, top: Descriptor,
                registry: RegistryOptions | None) -> CheckResults:
    """The push checks on what the sink holds before its tag is written."""
    from slimmer.coldstart.checks import run_checks
    if not isinstance(sink, Stages):
        raise UsageError(f"{sink.name}: this destination cannot be read before it is tagged, "
                         f"so --smoke and --coldstart cannot check it")
    staged = sink.staged(top)
    try:
        return run_checks(checks, src, staged, registry)
    finally:
        staged.close()


def coldstart(images: Sequence[str | Source], options: ColdstartOptions | None = None, *,
              registry: RegistryOptions | None = None) -> ColdstartReport:
    """Measure the cold start of each image (``options.runs`` runs, alternated between the
    images, each from an empty content store) on containerd + runc when they can be used
    here, else on the built-in proxy (``report.runtime`` and ``report.note`` say which and
    why). An image that does not start is reported with its output (``report.ok`` is
    False); nothing is left running or mounted."""
    from slimmer.coldstart.session import Session
    if not images:
        raise UsageError("coldstart needs at least one image")
    with Session(options or ColdstartOptions(), registry) as session:
        prepared = [session.prepare(image) for image in images]
        return session.measure(prepared)


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
        futures[key] = job.pool.submit(build_layer, out, image.layers, sink, scanned=scanned,
                                       level=options.level, threads=threads, progress=progress)
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


__all__ = ["ColdstartOptions", "PushChecks", "SlimOptions", "TrustOptions", "analyze",
           "coldstart", "open_sink", "open_source", "slim"]
