"""What ``slim push`` runs on a result before it tags it: ``--smoke CMD`` (the result must run
CMD to exit 0, else nothing is tagged) and ``--coldstart`` (source and result measured
alternately; the comparison goes into the report). One session serves both."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slimmer.coldstart.model import ColdstartReport
from slimmer.coldstart.options import PushChecks
from slimmer.coldstart.session import Session, select_runtime
from slimmer.errors import RuntimeUnavailableError, StartError
from slimmer.oci.image import Source

if TYPE_CHECKING:
    from slimmer.transports.registry.options import RegistryOptions


@dataclass
class CheckResults:
    """``smoke``: what ran and how long it took (None without ``--smoke``); ``coldstart``:
    the comparison of source and result (None without ``--coldstart``)."""

    smoke: dict[str, Any] | None = None
    coldstart: ColdstartReport | None = None


def check_runtime(checks: PushChecks) -> None:
    """Fail before anything is built when the checks cannot run here (``--smoke`` needs
    containerd; ``--runtime containerd`` needs it too)."""
    runtime = select_runtime(checks.options.runtime)
    if checks.smoke and runtime.kind != "containerd":
        raise RuntimeUnavailableError(f"--smoke runs the image, which needs containerd: "
                                      f"{runtime.note}")


def run_checks(checks: PushChecks, source: Source, result: Source,
               registry: RegistryOptions | None = None) -> CheckResults:
    """Smoke-test and/or measure ``result`` (the slimmed image before its tag); StartError
    when the smoke command fails or an image does not start."""
    out = CheckResults()
    with Session(checks.options, registry) as session:
        staged = session.prepare(result, role="result")
        if checks.smoke:
            command = shlex.join(checks.smoke)
            try:
                seconds = session.smoke(staged, checks.smoke)
            except StartError as exc:
                last = f" (last line: {exc.output[-1]})" if exc.output else ""
                raise StartError(f"smoke test {command!r} failed in the slimmed image: {exc}"
                                 f"{last}; nothing was tagged", exc.output) from exc
            out.smoke = {"cmd": list(checks.smoke), "seconds": seconds,
                         "runtime": f"containerd {session.runtime.version}"}
        if checks.coldstart:
            original = session.prepare(source, role="source")
            report = session.measure([original, staged])
            for image in report.failed:
                last = f" (last line: {image.output[-1]})" if image.output else ""
                raise StartError(f"--coldstart: the {image.role} image did not start: "
                                 f"{image.error}{last}; nothing was tagged", image.output)
            out.coldstart = report
    return out
