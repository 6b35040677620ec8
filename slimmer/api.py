"""Library API: ``slim`` and ``analyze``; the CLI and the hook are thin fronts over these."""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

from slimmer.build.cache import LayerCache
from slimmer.build.progress import LayerProgress, ProgressFn
from slimmer.build.reuse import LayerBuilder
from slimmer.build.run import Pushed, Run, plan_images, push_images
from slimmer.coldstart import ColdstartOptions, ColdstartReport, PushChecks
from slimmer.errors import UsageError
from slimmer.oci.digest import sha256_digest
from slimmer.oci.image import FormatLimits, ReadsCurrent, Root, Sink, Source, Stages
from slimmer.oci.media import ANNOT_OPTIONS_DIGEST, ANNOT_SOURCE_DIGEST
from slimmer.oci.model import Descriptor, Platform
from slimmer.oci.refs import RegistryRef, parse_reference
from slimmer.options import SlimOptions, options_digest
from slimmer.plan.model import ImagePlan
from slimmer.profiles import Matcher, Profile, builtin_profiles, select_profiles
from slimmer.report.model import ImageReport, Report
from slimmer.report.summary import cuda_warnings, image_report, plan_warnings
from slimmer.transports import open_sink, open_source
from slimmer.trust.options import TrustOptions

if TYPE_CHECKING:
    from slimmer.coldstart.checks import CheckResults
    from slimmer.transports.registry.options import RegistryOptions



def _matcher(options: SlimOptions) -> tuple[list[Profile], Matcher | None]:
    profiles = select_profiles(list(options.profiles), list(options.profile_files))
    if not profiles and not options.strip:
        return profiles, None
    return profiles, Matcher(profiles, list(options.strip), list(options.keep))


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
            registry: RegistryOptions | None = None, why: Sequence[str] = ()) -> Report:
    """Plan and measure what ``slim`` would do, writing nothing. ``why``: image paths whose
    fate each image's ``why`` explains (the rule that removes it, the keep rule or closure
    chain that keeps it)."""
    options, src, root, profiles, matcher = _prepare(source, options, registry)
    workers = _jobs(options, jobs)
    with ThreadPoolExecutor(workers) as pool:
        run = Run(pool, workers, progress)
        # Sniff file heads for every built-in profile so "what if" savings are complete.
        chosen = {p.name for p in profiles}
        everything = Matcher(profiles + [p for name, p in builtin_profiles().items()
                                         if name not in chosen])
        plans, indexes = plan_images(root, options, matcher, run, force_scan=True,
                                     sniff_matcher=everything, explain=why)
    others = {name: p for name, p in builtin_profiles().items()
              if name not in {q.name for q in profiles}}
    ml_profiles = [p for p in [*profiles, *others.values()] if p.category == "ml"]
    images = [image_report(image, plan, None, idx, others, options, ml_profiles=ml_profiles)
              for image, plan, idx in zip(root.images, plans, indexes)]
    return Report("analyze", src.name, None, root.descriptor.digest, None, images,
                  [p.name for p in profiles], _warnings(profiles, root, plans))


def slim(source: str | Source, dest: str | Sink, options: SlimOptions | None = None, *,
         progress: ProgressFn | None = None, registry: RegistryOptions | None = None,
         trust: TrustOptions | None = None, checks: PushChecks | None = None,
         cache: LayerCache | bool = True) -> Report:
    """Slim ``source`` into ``dest``: plan, build layers in parallel, write config, manifests
    and index, then point the destination tag at the result. On any error the destination is
    left as it was and the error is raised.

    ``trust`` (registry references): verify the source's cosign signature before anything is
    pushed; after the tag, attach the report and sign the new digest (``report.attachments``).
    ``checks``: before the tag, run a smoke command in the result (it must exit 0, else the
    destination is left as it was) and/or measure source and result cold starts
    (``report.smoke``, ``report.coldstart``). Neither changes the output bytes.
    ``cache``: the layer result cache (True: the one in ``$XDG_CACHE_HOME/slimmer``, False:
    none); a layer it knows whose blob the destination has or can mount is not built again.
    """
    if registry is not None and isinstance(source, str) and isinstance(dest, str):
        registry.check_sides(_registry_of(source), _registry_of(dest))
    if checks is not None and checks.active:
        from slimmer.coldstart.checks import check_runtime
        (options or SlimOptions()).check()
        check_runtime(checks.check())
    else:
        checks = None
    if trust is not None:
        (options or SlimOptions()).check()
        trust = trust.load()
        if not trust.active and isinstance(dest, str) and _registry_of(dest) is None:
            trust = None    # nothing to verify, sign or attach: no registry code to load
    if trust is not None:
        from slimmer.trust import remote
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
    if (trust is None or trust.sign_key is None) and checks is None:
        existing = _up_to_date(sink, root.descriptor.digest, fingerprint)
        if existing is not None:
            sink.abort()
            return Report("push", src.name, sink.name, root.descriptor.digest, existing, [],
                          [p.name for p in profiles], _warnings(profiles, root) + notes + [
                              "destination already holds this source slimmed with these "
                              "options: nothing written"], verified)
    layer_cache = _open_cache(cache)
    try:
        builder = LayerBuilder(sink, layer_cache, fingerprint)
        try:
            pushed = push_images(root, options, matcher, sink, fingerprint,
                                 _jobs(options, None), progress, builder)
            checked = _run_checks(checks, src, sink, pushed.top, registry) if checks else None
            sink.commit(pushed.top)
        except BaseException:
            sink.abort()
            raise
        builder.record(pushed.configs)
        if layer_cache is not None and layer_cache.problem:
            notes.append(layer_cache.problem)
    finally:
        if cache is True and layer_cache is not None:
            layer_cache.close()
    top = pushed.top
    report = Report("push", src.name, sink.name, root.descriptor.digest, top.digest,
                    _reports(pushed, root, options), [p.name for p in profiles],
                    _warnings(profiles, root, pushed.variants[0]) + notes, verified)
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


def _reports(pushed: Pushed, root: Root, options: SlimOptions) -> list[ImageReport]:
    """One image report per written manifest (the zstd twins name their variant)."""
    out = []
    count = len(root.images)
    for v, (plans, results) in enumerate(zip(pushed.variants, pushed.results)):
        for n, (image, plan, res, idx) in enumerate(zip(root.images, plans, results,
                                                        pushed.indexes)):
            out.append(image_report(image, plan, res, idx, {}, options,
                                    manifest=pushed.manifests[v * count + n],
                                    variant=options.variants[v] if v else None))
    return out


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


def _warnings(profiles: Sequence[Profile], root: Root,
              plans: Sequence[ImagePlan] = ()) -> list[str]:
    out = [f"profile {p.name}: {p.warning}" for p in profiles if p.warning]
    many = len(root.images) > 1
    for image, plan in zip(root.images, plans):
        out.extend(plan_warnings(plan, str(image.platform or "") if many else None))
    out.extend(cuda_warnings(plans))
    if root.skipped:
        out.append(f"{len(root.skipped)} index entries not slimmed and left out "
                   "(other platforms or attestations)")
    return out


__all__ = ["ColdstartOptions", "LayerCache", "LayerProgress", "ProgressFn", "PushChecks",
           "SlimOptions", "TrustOptions", "analyze", "coldstart", "open_sink", "open_source",
           "slim"]
