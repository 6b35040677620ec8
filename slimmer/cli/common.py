"""What every ``slim`` command shares: the size parameter type, the registry flags, the
progress display, report output, and turning SlimmerError into one line and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

import click

from slimmer.errors import SlimmerError, StartError, UsageError
from slimmer.report.model import Report
from slimmer.transports.registry.options import RegistryOptions
from slimmer.units import format_size, parse_bandwidth, parse_duration, parse_size

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
    """A duration in the grammar of ``slimmer.units`` (300, 5m, 2.5s, 250ms); seconds."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, float):
            return value
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


class Progress:
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
                  else f"{format_size(done)} of {format_size(total)}")
        sys.stderr.write(f"\r{stage}: {pct} {amount}   ")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and a rename, so a
    failed write leaves no half-written file; UsageError on failure."""
    directory = os.path.dirname(os.path.abspath(path))
    temp = None
    try:
        fd, temp = tempfile.mkstemp(prefix=".slim-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)
        raise UsageError(f"writing {path}: {exc.strerror or exc}") from exc


def emit_report(report: Report, json_out: str | None) -> None:
    """Print the report as text, and as JSON to ``json_out`` (a file, or '-' for stdout)."""
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


def run_with_report(make: Callable[[Progress], Report], json_out: str | None) -> None:
    """Run a command that produces a report, with a progress display, and print the report."""
    def go() -> None:
        progress = Progress()
        try:
            report = make(progress)
        finally:
            progress.close()
        emit_report(report, json_out)
    run(go)
