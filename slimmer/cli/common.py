"""What every ``slim`` command shares: the size parameter type, the registry flags, the
progress display, report output, and turning SlimmerError into one line and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import Any, Callable, Iterator

import click

from slimmer.cli.progress import Progress
from slimmer.errors import OutputError, SlimmerError, StartError, UsageError
from slimmer.report.model import Report
from slimmer.transports.registry.options import RegistryOptions
from slimmer.units import parse_bandwidth, parse_duration, parse_size

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class SizeType(click.ParamType):
    """A size in the one grammar of ``slimmer.units`` (16MiB, 10MB, 4096)."""

    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DurationType(click.ParamType):
    """A duration in the grammar of ``slimmer.units`` (30s, 5m, 1.5h, 250ms, 10)."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class BandwidthType(click.ParamType):
    """A bandwidth in the grammar of ``slimmer.units`` (1Gbit, 100Mbit/s, 125MB/s); bytes/s."""

    name = "BANDWIDTH"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_bandwidth(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def apply_options(f: Callable[..., Any], opts: list[Decorator]) -> Callable[..., Any]:
    """Apply click option decorators so they show in ``--help`` in list order."""
    for opt in reversed(opts):
        f = opt(f)
    return f


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The registry flags every command that reads or writes a registry takes."""
    return apply_options(f, [
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
    ])


def registry_from_flags(kw: dict[str, Any]) -> RegistryOptions:
    """RegistryOptions from the registry flags (and SLIM_USERNAME/SLIM_PASSWORD)."""
    creds = kw["creds"]
    user, password = os.environ.get("SLIM_USERNAME"), os.environ.get("SLIM_PASSWORD")
    if not creds and user and password is not None:
        creds = f"{user}:{password}"
    return RegistryOptions(creds=creds, src_creds=kw["src_creds"], dest_creds=kw["dest_creds"],
                           tls_verify=kw["tls_verify"], ca_file=kw["ca_file"],
                           insecure=tuple(kw["insecure"]))


def check_output_file(path: str | None, flag: str) -> None:
    """Fail before the run, not after it, when ``path`` cannot be written: its directory
    must exist and it must not be a directory itself."""
    if not path or path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory")
    if not os.path.isdir(directory):
        raise UsageError(f"{flag} {path}: no such directory {directory}")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{flag} {path}: directory {directory} is not writable")


def write_output(path: str, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename); OutputError on failure."""
    from slimmer.report.markup import write_atomic
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise OutputError(f"writing {what} {path}: {exc.strerror or exc}") from exc


def emit_report(report: Report, json_out: str | None, html_out: str | None = None,
                text: Callable[[Report], str] | None = None) -> None:
    """Print the report as text (``text`` renders it; default: the full summary), as JSON to
    ``json_out`` (a file, or '-' for stdout), and as a page to ``html_out``; files are
    written atomically (temp file, then rename)."""
    if html_out:
        from slimmer.report.html import render_html
        write_output(html_out, render_html(report).encode("utf-8"), "HTML report")
    if json_out:
        doc = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
        if json_out == "-":
            sys.stdout.write(doc)
            return
        write_output(json_out, doc.encode("utf-8"), "report")
    # Paths in layers are bytes; undecodable ones come back as they were, not as a crash.
    out = text(report) if text is not None else report.render_text()
    if hasattr(sys.stdout, "buffer"):
        sys.stdout.flush()
        sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(out)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM raises KeyboardInterrupt like Ctrl-C, so commands that start processes
    (containerd, a registry) stop them on the way out."""
    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(fn: Callable[[], None]) -> None:
    """Run a command body: SlimmerError becomes ``slim: error: ...`` and its exit code."""
    try:
        fn()
    except SlimmerError as exc:
        msg = str(exc).replace("\n", " ")
        click.echo(f"slim: error: {msg}", err=True)
        output = exc.output if isinstance(exc, StartError) else None
        if output:
            click.echo(f"slim: last {len(output)} lines of its output:", err=True)
            for line in output:
                click.echo(f"  {line}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("slim: interrupted", err=True)
        sys.exit(130)


def run_with_report(make: Callable[[Progress], Report], json_out: str | None,
                    html_out: str | None = None,
                    text: Callable[[Report], str] | None = None) -> None:
    """Run a command that produces a report, with a progress display, and print the report
    (as ``text`` renders it, default the full summary; a run that fails writes no report
    file)."""
    def go() -> None:
        check_output_file(json_out, "--json")
        check_output_file(html_out, "--html")
        progress = Progress()
        try:
            report = make(progress)
        finally:
            progress.close()
        emit_report(report, json_out, html_out, text)
    run(go)
