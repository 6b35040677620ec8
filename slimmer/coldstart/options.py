"""What a cold-start measurement is asked to do: how many runs, what makes a run ready, which
runtime, and what ``slim push`` checks before it tags a result. Frozen and checked once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from slimmer.errors import UsageError
from slimmer.units import parse_bandwidth


class RuntimeChoice(StrEnum):
    """Which runtime measures: containerd when it can (``auto``), containerd or nothing
    (``containerd``), or the built-in proxy (``proxy``: pull + decompress + untar)."""

    AUTO = "auto"
    CONTAINERD = "containerd"
    PROXY = "proxy"


class Readiness(StrEnum):
    """What makes a started image ready: its command exits 0, a log line matches, or an
    HTTP URL answers."""

    EXIT = "exit"
    LOG = "log"
    URL = "url"


RUNTIME_CHOICES = tuple(r.value for r in RuntimeChoice)
DEFAULT_RUNS = 3
DEFAULT_TIMEOUT = 300.0
DEFAULT_BANDWIDTH = "1Gbit"


@dataclass(frozen=True)
class ColdstartOptions:
    """How to measure: ``runs`` cold runs per image (alternated between images); ``cmd``
    replaces the image's entrypoint and command (the whole argv, as ``ctr run`` does);
    ``ready_log`` (a regular expression) or ``ready_url`` say when a long-running command is
    ready; ``timeout`` bounds each run (pull, unpack and start); ``bandwidth`` (bytes/s) is
    the node bandwidth the modelled total assumes; ``tmpfs`` puts the runtime's root on a
    tmpfs; ``work_dir`` is where the runtime's directories go (default: the temp dir)."""

    runs: int = DEFAULT_RUNS
    cmd: tuple[str, ...] = ()
    ready_log: str | None = None
    ready_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    runtime: str = RuntimeChoice.AUTO.value
    tmpfs: bool = False
    bandwidth: float = field(default_factory=lambda: parse_bandwidth(DEFAULT_BANDWIDTH))
    work_dir: str | None = None

    @property
    def readiness(self) -> Readiness:
        if self.ready_log is not None:
            return Readiness.LOG
        if self.ready_url is not None:
            return Readiness.URL
        return Readiness.EXIT

    def check(self) -> "ColdstartOptions":
        """These options, or UsageError naming the first invalid one."""
        if self.runs < 1:
            raise UsageError("--runs must be at least 1")
        if not self.timeout > 0:
            raise UsageError("--timeout must be more than 0 seconds")
        if not self.bandwidth > 0:
            raise UsageError("--bandwidth must be more than 0")
        if self.runtime not in RUNTIME_CHOICES:
            raise UsageError(f"--runtime must be one of {', '.join(RUNTIME_CHOICES)}")
        if self.ready_log is not None and self.ready_url is not None:
            raise UsageError("give --ready-log or --ready-url, not both")
        if self.ready_log is not None:
            try:
                re.compile(self.ready_log)
            except re.error as exc:
                raise UsageError(f"--ready-log {self.ready_log!r} is not a regular "
                                 f"expression: {exc}") from exc
        if self.ready_url is not None and not re.match(r"^https?://[^/\s]+", self.ready_url):
            raise UsageError(f"--ready-url {self.ready_url!r} must be an http:// or https:// "
                             f"URL")
        if any(not arg for arg in self.cmd[:1]):
            raise UsageError("--cmd must name a program")
        return self


@dataclass(frozen=True)
class PushChecks:
    """What ``slim push`` does with the slimmed image before it tags it: ``smoke`` runs this
    argv in it (it must exit 0 within ``options.timeout``, else nothing is tagged);
    ``coldstart`` measures source and result and adds the comparison to the report. Neither
    changes the output bytes, so they are not SlimOptions."""

    smoke: tuple[str, ...] = ()
    coldstart: bool = False
    options: ColdstartOptions = field(default_factory=ColdstartOptions)

    @property
    def active(self) -> bool:
        return bool(self.smoke) or self.coldstart

    def check(self) -> "PushChecks":
        self.options.check()
        if self.smoke and not self.smoke[0]:
            raise UsageError("--smoke must name a program")
        return self
