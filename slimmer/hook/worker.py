"""``slim worker``: runs jobs from the queue with huey's consumer, and keeps them durable.

huey removes a message from the queue when a worker takes it (SQLite: select + delete in one
transaction; Redis: BRPOP), so a worker that dies mid-job takes the message with it. The job
row does not go away: the worker claims it with a lease, a heartbeat thread renews the lease
while the job runs, and every worker's sweeper re-queues jobs whose lease expired (and sends
a fresh message for queued jobs that waited too long). Registry errors are retried with
exponential backoff up to ``max_attempts``; a lost worker counts as an attempt, so a job that
kills its worker every time still ends as ``failed``.

On SIGTERM the consumer stops taking jobs and waits ``shutdown_timeout`` for running ones;
jobs still running then are released (queued again, attempt not counted) before exit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

from huey import signals as huey_signals  # type: ignore[import-untyped]

from slimmer import api
from slimmer.errors import SlimmerError, UsageError
from slimmer.hook.config import WorkerConfig, load_rule_trust, trust_by_rule
from slimmer.hook.identity import user_agent
from slimmer.hook.intake import Hook
from slimmer.hook.queue import JobQueue
from slimmer.hook.rules import Rule, split_job_options
from slimmer.hook.served import Served
from slimmer.hook.store.model import DONE, FAILED, SKIPPED, ClaimRefusal, Job, JobStore
from slimmer.oci.media import ANNOT_SOURCE_DIGEST
from slimmer.oci.refs import canonical_registry, parse_registry_reference
from slimmer.report.model import Report
from slimmer.transports.registry import RegistryOptions
from slimmer.trust.options import TrustOptions

log = logging.getLogger("slimmer.hook.worker")

#: Test hook: seconds each job sleeps before it starts (lets tests kill a worker mid-job).
TEST_SLEEP_ENV = "SLIMMER_HOOK_TEST_JOB_SLEEP"

SlimFn = Callable[..., Report]
AnnotationsFn = Callable[[str, RegistryOptions], Mapping[str, str]]


def source_annotations(source: str, registry: RegistryOptions) -> Mapping[str, str]:
    """Annotations of the manifest or index ``source`` names (one GET, no blobs)."""
    from slimmer.transports.registry.repository import Repository
    ref = parse_registry_reference(source)
    with Repository.open(ref, registry, "source") as repo:
        raw, _, _ = repo.get_manifest(ref.reference, f"reading {ref} manifest")
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    annotations = doc.get("annotations") if isinstance(doc, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the error says it is temporary (registry unreachable or failing,
    job store down), or the machine's I/O failed; never refusals or missing sources."""
    if isinstance(exc, SlimmerError):
        return exc.temporary
    return isinstance(exc, OSError)


class Worker:
    """Runs jobs by id: claim, heartbeat, slim, record the outcome or schedule a retry.

    ``rules`` give each job's trust settings by rule name; their keys are loaded here, once
    (TrustError for a bad key or password), so no job ever reads a key file. Registry requests
    carry the hook's User-Agent (``registry.user_agent`` is replaced)."""

    def __init__(self, store: JobStore, queue: JobQueue, config: WorkerConfig,
                 registry: RegistryOptions | None = None, slim_fn: SlimFn | None = None,
                 annotations_fn: AnnotationsFn | None = None, owner: str | None = None,
                 rules: Sequence[Rule] = (), served: Served | None = None) -> None:
        """``served``: the registries the hook acts for (the CLI always passes it): a job
        whose source or destination is elsewhere fails without a connection."""
        self.store = store
        self.served = served
        self.rules = tuple(rules)
        self.queue = queue
        self.config = config
        self.registry = dataclasses.replace(registry or RegistryOptions(),
                                            user_agent=user_agent())
        self.trust = trust_by_rule(load_rule_trust(rules))
        self.slim_fn = slim_fn or api.slim
        self.annotations_fn = annotations_fn or source_annotations
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reconciler: threading.Thread | None = None
        queue.runner = self.run_job
        queue.huey.signal(huey_signals.SIGNAL_INTERRUPTED)(self._interrupted)

    # -- one job ------------------------------------------------------------------------------

    def run_job(self, job_id: str) -> None:
        """Run one job if it can be claimed; every outcome is recorded in the store."""
        claim = self.store.claim(job_id, self.owner, self.config.lease,
                                 self.config.max_attempts)
        if claim.job is None:
            level = logging.WARNING if claim.reason == ClaimRefusal.GAVE_UP else logging.INFO
            log.log(level, "job %s not run: %s", job_id, _CLAIM_TEXT.get(claim.reason,
                                                                          claim.reason),
                    extra={"job": job_id, "reason": claim.reason})
            return
        job = claim.job
        with self._lock:
            self._running.add(job.id)
        try:
            self._execute(job)
        finally:
            with self._lock:
                self._running.discard(job.id)

    def _execute(self, job: Job) -> None:
        fields = {"job": job.id, "source": job.source, "destination": job.destination,
                  "attempt": job.attempts}
        log.info("job %s started: %s -> %s (attempt %d)", job.id, job.source, job.destination,
                 job.attempts, extra=fields)
        started = time.monotonic()
        sleep = os.environ.get(TEST_SLEEP_ENV)
        try:
            if sleep:
                time.sleep(float(sleep))
            self._check_registries(job)
            options, recorded = split_job_options(job.options, where=f"job {job.id}")
            trust = self._trust_for(job, recorded)
            annotations = self.annotations_fn(job.source, self.registry)
            if ANNOT_SOURCE_DIGEST in annotations:
                reason = (f"source is slimmer output (of "
                          f"{annotations[ANNOT_SOURCE_DIGEST]}); not slimmed again")
                self.store.finish(job.id, self.owner, SKIPPED, error=reason)
                log.info("job %s skipped: %s", job.id, reason, extra=fields)
                return
            report = self.slim_fn(job.source, job.destination, options, registry=self.registry,
                                  trust=trust)
        except Exception as exc:
            self._failed(job, exc, fields)
            return
        before, after = report.size_before, report.size_after
        if not self.store.finish(job.id, self.owner, DONE, bytes_before=before,
                                 bytes_after=after, result_digest=report.digest):
            log.warning("job %s finished but was no longer ours (lease lost or released)",
                        job.id, extra=fields)
            return
        log.info("job %s done in %.1fs: %s -> %s, %d -> %s bytes", job.id,
                 time.monotonic() - started, job.source, job.destination, before, after,
                 extra={**fields, "bytes_before": before, "bytes_after": after,
                        "digest": report.digest})

    def _check_registries(self, job: Job) -> None:
        """UsageError (no retry, no connection) unless the job's source is on a served
        registry and its destination there too, or on a host its rule names with
        credentials: the job table is written by fronts, but nothing trusts a host blindly."""
        if self.served is None:
            return
        source = parse_registry_reference(job.source).registry
        if not self.served.serves(source):
            raise UsageError(f"source registry {source} is not one this hook serves "
                             f"({', '.join(self.served.hosts)})")
        named = [rule for rule in self.rules if rule.name == job.rule]
        if not any(self.served.allows_destination(rule, source, job.destination)
                   for rule in named):
            dest = parse_registry_reference(job.destination).registry
            if canonical_registry(dest) != canonical_registry(source):
                raise UsageError(f"destination registry {dest} is neither the source's nor "
                                 "one its rule names with credentials")

    def _trust_for(self, job: Job, recorded: Mapping[str, Any] | None) -> TrustOptions | None:
        """The loaded trust options of the job's rule. A job whose record says its rule
        verifies or signs fails (never runs unverified) when this worker's rule does not."""
        trust = self.trust.get(job.rule)
        if recorded is not None and trust is None:
            what = "has no trust settings" if job.rule in self.trust else "is unknown"
            raise UsageError(f"rule {job.rule!r} verifies or signs ({_describe(recorded)}), "
                             f"but in this worker's config it {what}; run workers with the "
                             "front's --config")
        return trust

    def _failed(self, job: Job, exc: Exception, fields: dict[str, Any]) -> None:
        error = str(exc).replace("\n", " ") or type(exc).__name__
        if not isinstance(exc, SlimmerError) and not is_transient(exc):
            log.error("job %s: internal error", job.id, exc_info=exc, extra=fields)
            error = f"internal error: {type(exc).__name__}: {error}"
        if is_transient(exc) and job.attempts < self.config.max_attempts:
            delay = self.config.retry_delay(job.attempts)
            if self.store.retry_later(job.id, self.owner, error, delay):
                self.queue.enqueue(job.id, delay=delay)
                log.warning("job %s attempt %d failed, retrying in %.0fs: %s", job.id,
                            job.attempts, delay, error, extra={**fields, "error": error})
            return
        if is_transient(exc):
            error = f"gave up after {job.attempts} attempts: {error}"
        self.store.finish(job.id, self.owner, FAILED, error=error)
        log.error("job %s failed: %s", job.id, error, extra={**fields, "error": error})

    def _interrupted(self, signal: str, task: Any, *args: Any) -> None:
        """huey signal for tasks still running at shutdown: give the job back."""
        job_id = task.args[0] if task.args else None
        if job_id and self.store.release(job_id, self.owner):
            self.queue.enqueue(job_id)
            log.warning("job %s interrupted by shutdown; queued again", job_id,
                        extra={"job": job_id})

    # -- lease upkeep -------------------------------------------------------------------------

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def maintain(self) -> None:
        """One round of upkeep: renew our leases, re-queue expired or forgotten jobs."""
        try:
            self.store.heartbeat(self.running(), self.owner, self.config.lease)
            for job_id in self.store.sweep(self.config.requeue_after):
                log.warning("job %s re-queued by the sweeper (lease expired or message lost)",
                            job_id, extra={"job": job_id})
                self.queue.enqueue(job_id)
        except SlimmerError as exc:
            log.error("lease upkeep failed: %s", exc)

    def start_maintenance(self) -> None:
        """Run ``maintain`` every lease/3 seconds in a daemon thread; with
        ``reconcile_every``, a catch-up run at start and then every that many seconds."""
        interval = max(0.2, self.config.lease / 3)

        def loop() -> None:
            while not self._stop.wait(interval):
                self.maintain()
        self.maintain()
        self._thread = threading.Thread(target=loop, name="slimmer-hook-leases", daemon=True)
        self._thread.start()
        if self.config.reconcile_every > 0 and self.served is not None:
            self._reconciler = threading.Thread(target=self._reconcile_loop,
                                                name="slimmer-hook-reconcile", daemon=True)
            self._reconciler.start()

    def _reconcile_loop(self) -> None:
        from slimmer.hook.reconcile import reconcile
        assert self.served is not None
        intake = Hook(self.rules, self.store, self.queue.enqueue, self.served)
        while True:
            try:
                reconcile(intake, self.registry)
            except SlimmerError as exc:
                log.error("reconcile failed: %s", exc, extra={"error": str(exc)})
            if self._stop.wait(self.config.reconcile_every):
                return

    def stop_maintenance(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._reconciler):
            if thread is not None:
                thread.join(timeout=5)


def _describe(record: Mapping[str, Any]) -> str:
    parts = [f"verify key {k}" for k in record.get("verify_keys") or ()]
    if record.get("sign_key"):
        parts.append(f"sign key {record['sign_key']}")
    return ", ".join(parts) or "report attached"


_CLAIM_TEXT: dict[str, str] = {ClaimRefusal.MISSING: "no such job", ClaimRefusal.BUSY: "running in another worker",
               ClaimRefusal.GAVE_UP: "gave up: attempts exhausted", DONE: "already done",
               FAILED: "already failed", SKIPPED: "already skipped"}


def run_consumer(worker: Worker, on_stop: Callable[[], None] | None = None) -> None:
    """Run huey's consumer (thread workers, SIGTERM = graceful) until a signal stops it.

    SIGTERM: take no new jobs, wait ``shutdown_timeout`` for running ones, release the rest.
    SIGINT: stop now, release running jobs. Both exit the process normally.
    """
    cfg = worker.config
    consumer = worker.queue.huey.create_consumer(
        workers=cfg.concurrency, worker_type="thread", periodic=False, initial_delay=0.1,
        backoff=1.15, max_delay=1.0, scheduler_interval=1, check_worker_health=True,
        graceful_signal="TERM", shutdown_timeout=cfg.shutdown_timeout)
    worker.start_maintenance()
    log.info("worker %s started: %d job thread(s) on %s", worker.owner, cfg.concurrency,
             worker.queue.config.describe())
    try:
        consumer.run()
    finally:
        worker.stop_maintenance()
        if on_stop is not None:
            on_stop()
    log.info("worker %s stopped", worker.owner)
