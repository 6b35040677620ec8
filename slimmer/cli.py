"""The ``slim`` command: a thin front over ``slimmer.api``."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any, Callable

import click

from . import api
from .errors import SlimmerError, UsageError
from .plan import DEFAULT_MERGE_THRESHOLD
from .registry import RegistryOptions
from .report import Report, human
from .trust.cli import push_trust_options, trust_commands, trust_from_flags

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2,
          "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


def parse_size(text: str) -> int:
    """``16MiB``, ``10M``, ``1.5GB`` or plain bytes."""
    m = _SIZE_RE.match(text)
    unit = (m.group(2) or "").lower() if m else None
    if not m or unit not in _UNITS:
        raise click.BadParameter(f"not a size: {text!r} (examples: 16MiB, 10MB, 4096)")
    return int(float(m.group(1)) * _UNITS[unit])


class _Size(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except click.BadParameter as exc:
            self.fail(str(exc.message), param, ctx)


def _slim_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--profile", "profiles", multiple=True, metavar="NAME[,NAME...]",
                     help="Strip profiles (default: caches,docs; 'none' strips nothing)."),
        click.option("--profile-file", "profile_files", multiple=True, metavar="FILE",
                     help="Add rules from a profile file (same TOML format as the built-ins)."),
        click.option("--strip", multiple=True, metavar="GLOB", help="Also strip paths matching GLOB."),
        click.option("--keep", multiple=True, metavar="GLOB",
                     help="Never strip paths matching GLOB (always wins)."),
        click.option("--platform", "platforms", multiple=True, metavar="OS/ARCH[/VARIANT]",
                     help="Only these platforms of a multi-platform image (default: all)."),
        click.option("--merge", type=click.Choice(["auto", "none", "all"]), default="auto",
                     show_default=True, help="Layer merge policy."),
        click.option("--merge-threshold", type=_Size(), default=DEFAULT_MERGE_THRESHOLD,
                     show_default="16MiB",
                     help="With --merge auto, layers smaller than this are merged with "
                          "adjacent small layers."),
        click.option("--base", type=click.IntRange(min=0), default=0, show_default=True,
                     help="The first N layers are base layers: never merged."),
        click.option("--keep-base", is_flag=True,
                     help="Pass base layers through byte-identical even if a profile would "
                          "strip from them."),
        click.option("--compression", type=click.Choice(["zstd", "gzip", "none", "keep"]),
                     default="zstd", show_default=True, help="Output layer compression."),
        click.option("--level", type=int, default=None,
                     help="Compression level (zstd 1-19, default 2; gzip 0-3, default 2)."),
        click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                     help="Layers built in parallel (default: all cores)."),
        click.option("--json", "json_out", metavar="FILE|-",
                     help="Write the report as JSON to FILE, or '-' for stdout."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--creds", metavar="USER:PASS", envvar="SLIM_CREDS", show_envvar=True,
                     help="Registry credentials for source and destination (default: "
                          "SLIM_USERNAME/SLIM_PASSWORD, else docker/podman login)."),
        click.option("--src-creds", metavar="USER:PASS", envvar="SLIM_SRC_CREDS",
                     show_envvar=True, help="Credentials for the source registry only."),
        click.option("--dest-creds", metavar="USER:PASS", envvar="SLIM_DEST_CREDS",
                     show_envvar=True, help="Credentials for the destination registry only."),
        click.option("--tls-verify/--no-tls-verify", default=None,
                     help="Use HTTPS and verify certificates (default: verify; localhost and "
                          "127.0.0.1 use plain HTTP unless this or --ca-file is given)."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
                     help="Trust the CA certificates in FILE (PEM) besides the system CAs."),
        click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
                     help="Reach this registry over plain HTTP (repeatable)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _registry(kw: dict[str, Any]) -> RegistryOptions:
    creds = kw["creds"]
    user, password = os.environ.get("SLIM_USERNAME"), os.environ.get("SLIM_PASSWORD")
    if not creds and user and password is not None:
        creds = f"{user}:{password}"
    return RegistryOptions(creds=creds, src_creds=kw["src_creds"], dest_creds=kw["dest_creds"],
                           tls_verify=kw["tls_verify"], ca_file=kw["ca_file"],
                           insecure=tuple(kw["insecure"]))


def _options(kw: dict[str, Any]) -> api.SlimOptions:
    return api.SlimOptions(
        profiles=tuple(kw["profiles"]), profile_files=tuple(kw["profile_files"]),
        strip=tuple(kw["strip"]), keep=tuple(kw["keep"]), platforms=tuple(kw["platforms"]),
        merge=kw["merge"], merge_threshold=kw["merge_threshold"], base=kw["base"],
        keep_base=kw["keep_base"], compression=kw["compression"], level=kw["level"],
        jobs=kw["jobs"])


class _Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        pct = f"{100 * done / total:3.0f}%" if total else ""
        amount = (f"{done} of {total} layers" if stage == "scan"
                  else f"{human(done)} of {human(total)}")
        sys.stderr.write(f"\r{stage}: {pct} {amount}   ")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _emit(report: Report, json_out: str | None) -> None:
    if json_out:
        text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
            return
        try:
            with open(json_out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"writing report {json_out}: {exc.strerror}") from exc
    # Paths in layers are bytes; undecodable ones come back as they were, not as a crash.
    text = report.render_text()
    if hasattr(sys.stdout, "buffer"):
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(text)


def _run(fn: Callable[[], None]) -> None:
    try:
        fn()
    except SlimmerError as exc:
        msg = str(exc).replace("\n", " ")
        click.echo(f"slim: error: {msg}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("slim: interrupted", err=True)
        sys.exit(130)


def _run_with_report(make: Callable[[_Progress], Report], json_out: str | None) -> None:
    """Run a command that produces a report, with a progress display, and print the report."""
    def go() -> None:
        progress = _Progress()
        try:
            report = make(progress)
        finally:
            progress.close()
        _emit(report, json_out)
    _run(go)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="slimmer", prog_name="slim")
def main() -> None:
    """Make container images smaller and faster to start, without a Docker daemon.

    References: oci:DIR[:TAG|@DIGEST] (an OCI image layout) or
    [docker://]HOST[:PORT]/REPO[:TAG|@DIGEST] (a registry; no HOST means docker.io).
    """


@main.command()
@click.argument("source")
@click.argument("destination")
@_slim_options
@_registry_options
@push_trust_options
def push(source: str, destination: str, **kw: Any) -> None:
    """Slim SOURCE and write the result to DESTINATION."""
    _run_with_report(lambda progress: api.slim(
        source, destination, _options(kw), progress=progress, registry=_registry(kw),
        trust=trust_from_flags(kw)), kw["json_out"])


@main.command()
@click.argument("source")
@_slim_options
@_registry_options
def analyze(source: str, **kw: Any) -> None:
    """Show the plan and what it would save for SOURCE; writes nothing."""
    _run_with_report(lambda progress: api.analyze(
        source, _options(kw), progress=progress, registry=_registry(kw)), kw["json_out"])


@main.command()
@click.argument("name", required=False)
@click.option("--profile-file", "profile_files", multiple=True, metavar="FILE",
              help="Also list the profiles in FILE.")
def profiles(name: str | None, profile_files: tuple[str, ...]) -> None:
    """List strip profiles, or show the rules of profile NAME."""
    from .profiles import builtin_profiles, load_profile_file, render_profile, render_profile_list

    def go() -> None:
        table = dict(builtin_profiles())
        for path in profile_files:
            for p in load_profile_file(path):
                table[p.name] = p
        if name is None:
            click.echo(render_profile_list(table).rstrip("\n"))
            return
        if name not in table:
            from .errors import ProfileError
            raise ProfileError(f"unknown profile {name!r} (known: {', '.join(sorted(table))})")
        click.echo(render_profile(table[name]).rstrip("\n"))
    _run(go)


# Trust: slim verify / report (slimmer/trust), with the same registry flags.
for _command in trust_commands(_registry_options, _registry, _run):
    main.add_command(_command)


# The registry hook: slim serve / worker / jobs (slimmer/hook), with the same registry flags.
from .hook.cli import hook_commands  # noqa: E402

for _command in hook_commands(_registry_options, _registry, _run):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
