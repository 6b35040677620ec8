"""``slim coldstart`` and the flags ``slim push`` takes to check a result before it tags it
(``--smoke``, ``--coldstart`` and how to measure)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, Callable

import click

from slimmer.cli.common import (
    BandwidthType,
    DurationType,
    apply_options,
    check_output_file,
    registry_from_flags,
    registry_options,
    run,
    sigterm_as_interrupt,
    write_output,
)
from slimmer.coldstart.options import (
    DEFAULT_BANDWIDTH,
    DEFAULT_RUNS,
    DEFAULT_TIMEOUT,
    RUNTIME_CHOICES,
    ColdstartOptions,
    PushChecks,
)
from slimmer.errors import StartError, UsageError


def _argv(text: str | None, flag: str) -> tuple[str, ...]:
    if not text:
        return ()
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r}: {exc}") from exc


def measure_flags(runs_flag: str, cmd_flag: str, timeout_flag: str) -> list[Any]:
    """The flags of a measurement; ``slim push`` names some differently (its --timeout would
    read as a registry timeout, its --cmd as a change to the image)."""
    return [
        click.option(runs_flag, "runs", type=click.IntRange(min=1), default=DEFAULT_RUNS,
                     show_default=True, help="Cold runs per image (alternated between images)."),
        click.option(cmd_flag, "cmd", metavar="CMD",
                     help="Run CMD (split like a shell) instead of the image's entrypoint and "
                          "command."),
        click.option("--ready-log", metavar="REGEX",
                     help="Ready when a line of the output matches REGEX (the command keeps "
                          "running)."),
        click.option("--ready-url", metavar="URL",
                     help="Ready when URL answers 200-399; the container uses the host "
                          "network."),
        click.option(timeout_flag, "timeout", type=DurationType(), default=DEFAULT_TIMEOUT,
                     show_default="300s", help="Limit on each run: pull, unpack and start."),
        click.option("--runtime", type=click.Choice(list(RUNTIME_CHOICES)), default="auto",
                     show_default=True,
                     help="containerd + runc (needs root), the built-in proxy (pull + "
                          "decompress + untar, no start), or auto: containerd when it can."),
        click.option("--tmpfs", is_flag=True,
                     help="Put containerd's root on a tmpfs (disk writeback out of the "
                          "numbers)."),
        click.option("--bandwidth", type=BandwidthType(), default=DEFAULT_BANDWIDTH,
                     show_default=True,
                     help="Node bandwidth for the modelled total (1Gbit, 100Mbit/s, 125MB/s)."),
    ]


def options_from_flags(kw: dict[str, Any], cmd_flag: str = "--cmd") -> ColdstartOptions:
    return ColdstartOptions(runs=kw["runs"], cmd=_argv(kw["cmd"], cmd_flag),
                            ready_log=kw["ready_log"], ready_url=kw["ready_url"],
                            timeout=kw["timeout"], runtime=kw["runtime"], tmpfs=kw["tmpfs"],
                            bandwidth=kw["bandwidth"])


def push_check_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``slim push --smoke CMD`` and ``--coldstart`` with how to measure."""
    return apply_options(f, [
        click.option("--smoke", metavar="CMD",
                     help="Before tagging, run CMD in the slimmed image (containerd); it must "
                          "exit 0, else nothing is tagged."),
        click.option("--coldstart", "coldstart", is_flag=True,
                     help="Before tagging, measure the cold start of source and result and "
                          "add the comparison to the report."),
        *measure_flags("--coldstart-runs", "--coldstart-cmd", "--start-timeout"),
    ])


def checks_from_flags(kw: dict[str, Any]) -> PushChecks | None:
    """PushChecks from the push flags, or None when neither --smoke nor --coldstart is given."""
    options = options_from_flags(kw, "--coldstart-cmd")
    if not kw["smoke"] and not kw["coldstart"]:
        return None
    return PushChecks(_argv(kw["smoke"], "--smoke"), kw["coldstart"], options)


def coldstart_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    return apply_options(f, measure_flags("--runs", "--cmd", "--timeout"))


@click.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE [IMAGE...]")
@coldstart_flags
@click.option("--json", "json_out", metavar="FILE|-",
              help="Write the results as JSON to FILE, or '-' for stdout.")
@click.option("--html", "html_out", metavar="FILE",
              help="Write the results as one self-contained HTML page to FILE.")
@registry_options
def coldstart(images: tuple[str, ...], json_out: str | None, html_out: str | None,
              **kw: Any) -> None:
    """Measure how fast each IMAGE pulls, unpacks and starts from an empty content store.

    With containerd + runc as root: a private containerd per run, images served from a
    private registry on 127.0.0.1. Otherwise the built-in proxy (pull + decompress + untar).
    --json and --html files are checked before the run and written after it.
    """
    from slimmer import api

    def go() -> None:
        options = options_from_flags(kw)
        check_output_file(json_out, "--json")
        check_output_file(html_out, "--html")
        with sigterm_as_interrupt():
            report = api.coldstart(list(images), options, registry=registry_from_flags(kw))
        # Images that did not start are results too: the files say why, then exit 1.
        if html_out:
            from slimmer.report.coldstart_html import render_coldstart_html
            write_output(html_out, render_coldstart_html(report).encode("utf-8"),
                         "cold-start page")
        if json_out:
            text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
            if json_out == "-":
                sys.stdout.write(text)
            else:
                write_output(json_out, text.encode("utf-8"), "results")
        if json_out != "-":
            sys.stdout.write(report.render_text())
        if not report.ok:
            names = ", ".join(i.image for i in report.failed)
            raise StartError(f"{len(report.failed)} of {len(report.images)} images did not "
                             f"start: {names}")
    run(go)

