"""The hook's intake: from parsed notifications to jobs. For every push event it checks that
the event names a served registry (the registry to act for is configuration, never event
data), decides by the rules (loop prevention included), records the job (the insert is the
dedupe) and sends its message; it refuses new work while too many jobs wait. Also the
front's metrics."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Sequence

from slimmer.errors import SlimmerError
from slimmer.hook.events import Parsed, PushEvent
from slimmer.hook.identity import USER_AGENT_PREFIX
from slimmer.hook.rules import Rule, Verdict, decide, job_id, job_options
from slimmer.hook.served import Served
from slimmer.hook.store.model import QUEUED, RETRYING, STATES, JobSpec, JobStore

log = logging.getLogger("slimmer.hook.intake")


class Outcome(StrEnum):
    """What became of one push event, as counted in ``slimmer_hook_events_total``."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"          # no rule matches, not a tagged manifest push, ...
    OWN = "own"                  # slimmer's own output (User-Agent or a rule's destination)
    FOREIGN = "foreign"          # names a registry this hook does not serve
    INVALID = "invalid"          # malformed fields (repository, tag, digest, size, host)


OUTCOMES = tuple(Outcome)


class QueueFull(SlimmerError):
    """Too many jobs wait: the front answers 503 and the sender delivers again later."""

    @property
    def temporary(self) -> bool:
        return True


@dataclass
class FrontMetrics:
    """Counters of this front process (job counts come from the shared store)."""

    events_received: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    requests: dict[int, int] = field(default_factory=dict)
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, status: int) -> None:
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1

    def event(self, outcome: Outcome) -> None:
        with self.lock:
            self.events_received += 1
            self.outcomes[outcome] += 1


class Hook:
    """Turns parsed notifications into jobs: what the server does once a body is accepted.

    ``served``: the registries to act for; ``max_queued``: waiting jobs (queued or retrying)
    beyond which ``process`` raises QueueFull instead of taking more work."""

    def __init__(self, rules: Sequence[Rule], store: JobStore, enqueue: Callable[[str], None],
                 served: Served, pending: Callable[[], int] | None = None,
                 max_queued: int | None = None) -> None:
        self.rules = tuple(rules)
        self.store = store
        self.enqueue = enqueue
        self.served = served
        self.pending = pending
        self.max_queued = max_queued
        self.metrics = FrontMetrics()

    def waiting(self) -> int:
        """Jobs queued or retrying, all workers together."""
        counts = self.store.counts()
        return counts.get(QUEUED, 0) + counts.get(RETRYING, 0)

    def process(self, parsed: Parsed) -> dict[str, Any]:
        """Queue a job for every push a rule matches; the summary goes back to the sender.
        QueueFull (nothing recorded) when ``max_queued`` jobs already wait."""
        if parsed.pushes and self.max_queued is not None and \
                self.waiting() >= self.max_queued:
            with self.metrics.lock:
                self.metrics.busy += 1
            raise QueueFull(f"{self.max_queued} jobs are waiting; deliver again later")
        summary: dict[str, Any] = {"queued": [], "duplicates": [], "ignored": []}
        for reason in parsed.skipped:
            self.metrics.event(Outcome.IGNORED)
            summary["ignored"].append({"reason": reason})
        for reason in parsed.invalid:
            self.metrics.event(Outcome.INVALID)
            log.warning("skipped invalid event: %s", reason, extra={"reason": reason})
            summary["ignored"].append({"reason": reason})
        for push in parsed.pushes:
            outcome, detail = self._one(push)
            self.metrics.event(outcome)
            if outcome == Outcome.QUEUED:
                summary["queued"].append(detail)
            elif outcome == Outcome.DUPLICATE:
                summary["duplicates"].append(detail)
            else:
                summary["ignored"].append(detail)
        return summary

    def _one(self, push: PushEvent) -> tuple[Outcome, dict[str, Any]]:
        what = {"repository": push.repository, "tag": push.tag, "digest": push.digest}
        if push.user_agent and push.user_agent.startswith(USER_AGENT_PREFIX):
            log.info("ignored own push %s:%s (User-Agent)", push.repository, push.tag,
                     extra=what)
            return Outcome.OWN, {**what, "reason": "pushed by slimmer-hook (User-Agent)"}
        host = self.served.match(push.registry)
        stray = None if host is None else next(
            (n for n in push.also if self.served.match(n) is None), None)
        if host is None or stray is not None:
            named = stray or push.registry or "no registry"
            reason = f"the event names {named}, which this hook does not serve"
            log.warning("ignored push %s:%s: %s", push.repository, push.tag, reason,
                        extra={**what, "named": named, "reason": reason})
            return Outcome.FOREIGN, {**what, "reason": reason}
        registry = self.served.reach(host)
        aliases = [n for n in (host, push.registry) if n and n != registry]
        decision = decide(self.rules, registry, push.repository, push.tag, push.digest,
                          aliases)
        if decision.rule is None or decision.destination is None:
            log.info("ignored push %s:%s: %s", push.repository, push.tag, decision.reason,
                     extra={**what, "reason": decision.reason})
            return (Outcome.OWN if decision.verdict == Verdict.PRODUCED else Outcome.IGNORED,
                    {**what, "reason": decision.reason})
        if not self.served.allows_destination(decision.rule, registry, decision.destination):
            reason = (f"rule {decision.rule.name!r} renders {decision.destination}, on a "
                      "registry the rule does not name with credentials")
            log.warning("ignored push %s:%s: %s", push.repository, push.tag, reason,
                        extra={**what, "reason": reason})
            return Outcome.IGNORED, {**what, "reason": reason}
        source = f"{registry}/{push.repository}@{push.digest}"
        jid = job_id(source, decision.destination)
        spec = JobSpec(jid, source, decision.destination, registry, push.repository, push.tag,
                       push.digest, decision.rule.name, job_options(decision.rule))
        detail = {**what, "job": jid, "destination": decision.destination}
        if not self.store.create(spec):
            log.info("duplicate push %s:%s (job %s exists)", push.repository, push.tag, jid,
                     extra=detail)
            return Outcome.DUPLICATE, detail
        self.enqueue(jid)
        log.info("queued job %s: %s -> %s", jid, source, decision.destination,
                 extra={**detail, "rule": decision.rule.name})
        return Outcome.QUEUED, detail

    # -- metrics ------------------------------------------------------------------------------

    def render_metrics(self) -> str:
        """Prometheus text format (version 0.0.4)."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str,
                   samples: Sequence[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {value:g}" if isinstance(value, float)
                           else f"{name}{labels} {value}")

        m = self.metrics
        with m.lock:
            received = m.events_received
            outcomes = dict(m.outcomes)
            requests = dict(m.requests)
            busy = m.busy
        metric("slimmer_hook_events_received_total", "counter",
               "Registry events received by this front.", [("", received)])
        metric("slimmer_hook_events_total", "counter",
               "Events by outcome: queued, duplicate, ignored (no rule, not a tagged manifest "
               "push), own (produced by the hook), foreign (names a registry this hook does "
               "not serve), invalid (malformed fields).",
               [(f'{{outcome="{o}"}}', n) for o, n in outcomes.items()])
        metric("slimmer_hook_busy_total", "counter",
               "Notifications refused with 503 because max_queued jobs were waiting.",
               [("", busy)])
        metric("slimmer_hook_http_requests_total", "counter",
               "Webhook requests by HTTP status.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(requests.items())])
        try:
            counts = self.store.counts()
            totals = self.store.totals()
            pending = self.pending() if self.pending else None
            up = 1
        except SlimmerError as exc:  # the store is down: say so, keep serving
            log.error("metrics: job store unavailable: %s", exc)
            counts, totals, pending, up = {}, {}, None, 0
        metric("slimmer_hook_store_up", "gauge", "Whether the job store answered.",
               [("", up)])
        if counts:
            metric("slimmer_hook_jobs", "gauge", "Jobs in the store by state.",
                   [(f'{{state="{s}"}}', counts.get(s, 0)) for s in STATES])
        if totals:
            metric("slimmer_hook_jobs_finished_total", "counter",
                   "Jobs that reached a final state (all workers).",
                   [(f'{{state="{s}"}}', totals.get(s, 0)) for s in ("done", "failed",
                                                                     "skipped")])
            metric("slimmer_hook_job_retries_total", "counter",
                   "Attempts that failed with a transient error and were retried.",
                   [("", totals.get("retries", 0))])
            metric("slimmer_hook_jobs_lost_total", "counter",
                   "Attempts whose worker vanished (lease expired).",
                   [("", totals.get("lost", 0))])
            metric("slimmer_hook_bytes_saved_total", "counter",
                   "Compressed bytes saved by finished jobs (source minus result size).",
                   [("", totals.get("bytes_saved", 0))])
        if pending is not None:
            metric("slimmer_hook_queue_messages", "gauge",
                   "Messages waiting in the huey queue.", [("", pending)])
        return "\n".join(out) + "\n"


