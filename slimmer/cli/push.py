"""``slim push``, ``slim analyze`` and ``slim profiles``: the core commands."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import click

from slimmer.cli.coldstart import checks_from_flags, push_check_options
from slimmer.cli.common import (
    SizeType,
    apply_options,
    registry_from_flags,
    registry_options,
    run,
    run_with_report,
    sigterm_as_interrupt,
)
from slimmer.cli.trust import push_trust_options, trust_from_flags
from slimmer.errors import ProfileError
from slimmer.options import (
    COMPRESSION_CHOICES,
    DEFAULT_DEDUPE_MIN_SIZE,
    DEFAULT_MERGE_THRESHOLD,
    MERGE_MODES,
    SlimOptions,
)
from slimmer.report.model import Report


def slim_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The flags that make SlimOptions (``push`` and ``analyze``)."""
    return apply_options(f, [
        click.option("--profile", "profiles", multiple=True, metavar="NAME[,NAME...]",
                     help="Strip profiles (default: caches,docs; 'none' strips nothing)."),
        click.option("--profile-file", "profile_files", multiple=True, metavar="FILE",
                     help="Add rules from a profile file (same TOML format as the built-ins)."),
        click.option("--strip", multiple=True, metavar="GLOB", help="Also strip paths matching GLOB."),
        click.option("--keep", multiple=True, metavar="GLOB",
                     help="Never strip paths matching GLOB (always wins; what they need is "
                          "kept too)."),
        click.option("--no-protect", "no_protect", multiple=True, metavar="GLOB",
                     help="Let rules remove paths matching GLOB even when the image needs "
                          "them (a warning names each)."),
        click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH[/VARIANT]",
                     help="Only these platforms of a multi-platform image (default: all)."),
        click.option("--merge", type=click.Choice(list(MERGE_MODES)), default="auto",
                     show_default=True, help="Layer merge policy."),
        click.option("--merge-threshold", type=SizeType(), default=DEFAULT_MERGE_THRESHOLD,
                     show_default="16MiB",
                     help="With --merge auto, layers smaller than this are merged with "
                          "adjacent small layers."),
        click.option("--base", type=click.IntRange(min=0), default=0, show_default=True,
                     help="The first N layers are base layers: never merged."),
        click.option("--keep-base", is_flag=True,
                     help="Pass base layers through byte-identical even if a profile would "
                          "strip from them."),
        click.option("--compression", type=click.Choice(list(COMPRESSION_CHOICES)),
                     default="zstd", show_default=True,
                     help="Output layer compression; gzip+zstd writes both per platform in "
                          "one index (gzip first, for clients without zstd)."),
        click.option("--level", type=int, default=None,
                     help="Compression level (zstd 1-22, default 2; 20-22 need GiBs of memory "
                          "and run one layer at a time; gzip 0-3, default 2)."),
        click.option("--cuda-arch", "cuda_arch", multiple=True, metavar="GPU[,GPU...]",
                     help="Keep GPU code in CUDA fat binaries only for these GPUs (sm_90, "
                          "sm_80,sm_90, h100, a100, l4, ...; see README); the rest is "
                          "blanked. Default: keep all."),
        click.option("--no-ptx", is_flag=True,
                     help="With --cuda-arch: drop PTX too, keep only cubins."),
        click.option("--dedupe", is_flag=True,
                     help="Identical files (content, mode, owner, xattrs) that end up in the "
                          "same output layer become one file and hardlinks to it."),
        click.option("--dedupe-min", "dedupe_min_size", type=SizeType(),
                     default=DEFAULT_DEDUPE_MIN_SIZE, show_default="1MiB",
                     help="With --dedupe, smaller files are left alone."),
        click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                     help="Layers built in parallel (default: all cores)."),
        click.option("--json", "json_out", metavar="FILE|-",
                     help="Write the report as JSON to FILE, or '-' for stdout."),
        click.option("--html", "html_out", metavar="FILE",
                     help="Write the report as one self-contained HTML page to FILE."),
    ])


def options_from_flags(kw: dict[str, Any]) -> SlimOptions:
    """SlimOptions from the ``slim_options`` flags."""
    return SlimOptions(
        profiles=tuple(kw["profiles"]), profile_files=tuple(kw["profile_files"]),
        strip=tuple(kw["strip"]), keep=tuple(kw["keep"]), no_protect=tuple(kw["no_protect"]),
        platforms=tuple(kw["platforms"]),
        merge=kw["merge"], merge_threshold=kw["merge_threshold"], base=kw["base"],
        keep_base=kw["keep_base"], compression=kw["compression"], level=kw["level"],
        jobs=kw["jobs"], cuda_arch=tuple(kw["cuda_arch"]), no_ptx=kw["no_ptx"],
        dedupe=kw["dedupe"], dedupe_min_size=kw["dedupe_min_size"])


@click.command()
@click.argument("source")
@click.argument("destination")
@slim_options
@registry_options
@push_trust_options
@push_check_options
@click.option("--no-cache", is_flag=True,
              help="Build every layer; neither read nor write the layer cache "
                   "($XDG_CACHE_HOME/slimmer/layers.db).")
def push(source: str, destination: str, **kw: Any) -> None:
    """Slim SOURCE and write the result to DESTINATION.

    SOURCE and DESTINATION: HOST/REPO[:TAG] (a registry), oci:DIR[:TAG],
    docker-archive:FILE[:NAME:TAG] or oci-archive:FILE[:TAG]."""
    from slimmer import api

    def make(progress: Any) -> Any:
        checks = checks_from_flags(kw)
        with sigterm_as_interrupt() if checks is not None else contextlib.nullcontext():
            return api.slim(source, destination, options_from_flags(kw), progress=progress,
                            registry=registry_from_flags(kw), trust=trust_from_flags(kw),
                            checks=checks, cache=not kw["no_cache"])
    run_with_report(make, kw["json_out"], kw["html_out"])


@click.command()
@click.argument("source")
@slim_options
@click.option("--why", "why", multiple=True, metavar="PATH",
              help="Only say why PATH is kept or removed (rule, keep rule, the chain of what "
                   "needs it); repeatable.")
@registry_options
def analyze(source: str, **kw: Any) -> None:
    """Show the plan and what it would save for SOURCE; writes nothing."""
    from slimmer import api
    why = tuple(kw["why"])
    run_with_report(lambda progress: api.analyze(
        source, options_from_flags(kw), progress=progress, registry=registry_from_flags(kw),
        why=why), kw["json_out"], kw["html_out"], text=render_why if why else None)


def render_why(report: Report) -> str:
    """The ``--why`` answers, one line per path and image, then the warnings."""
    lines = []
    many = len(report.images) > 1
    for img in report.images:
        for entry in img.why.values():
            lines.append((f"{img.platform}: " if many else "") + entry["text"])
    lines.extend(f"warning: {w}" for w in report.warnings)
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("name", required=False)
@click.option("--profile-file", "profile_files", multiple=True, metavar="FILE",
              help="Also list the profiles in FILE.")
def profiles(name: str | None, profile_files: tuple[str, ...]) -> None:
    """List strip profiles, or show the rules of profile NAME."""
    from slimmer.profiles import (
        builtin_profiles,
        load_profile_file,
        render_profile,
        render_profile_list,
    )

    def go() -> None:
        table = dict(builtin_profiles())
        for path in profile_files:
            for p in load_profile_file(path):
                table[p.name] = p
        if name is None:
            click.echo(render_profile_list(table).rstrip("\n"))
            return
        if name not in table:
            raise ProfileError(f"unknown profile {name!r} (known: {', '.join(sorted(table))})")
        click.echo(render_profile(table[name]).rstrip("\n"))
    run(go)
