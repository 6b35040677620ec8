"""The job table: one row per (source digest, destination) with a state, attempts, a lease and
the outcome. It lives next to huey's queue (same SQLite file, or the same Redis) and is what
makes a job durable: huey's dequeue removes the message, so a worker killed mid-job loses it;
the row does not go away, its lease expires and the sweeper sends a new message.

States: queued -> running -> done | failed | skipped, with running -> retrying -> running on
registry errors (after a backoff) and running -> queued when a lease expires or a worker
shuts down. Every transition is one atomic statement or transaction (SQLite) or Lua script
(Redis), guarded by the state and the owner, so a duplicate message can never run a job twice
at the same time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Iterable, Mapping, Protocol

from slimmer.errors import SlimmerError


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class ClaimRefusal(StrEnum):
    """Why a job could not be claimed (besides being in a final state already)."""

    MISSING = "missing"      # no such job
    BUSY = "busy"            # running in another worker under a live lease
    GAVE_UP = "gave-up"      # attempts exhausted: the job is failed now


QUEUED, RUNNING, RETRYING, DONE, FAILED, SKIPPED = tuple(JobState)
STATES = tuple(JobState)
FINAL = (DONE, FAILED, SKIPPED)
CLAIMED = "claimed"
#: Counters kept in the store, shared by every process (exported as Prometheus counters).
COUNTERS = ("done", "failed", "skipped", "retries", "lost", "bytes_saved")


class StoreError(SlimmerError):
    """The job store (SQLite file or Redis) cannot be reached or used."""

    @property
    def temporary(self) -> bool:
        return True


@dataclass(frozen=True)
class JobSpec:
    """What the front records for a push: enough for any worker to run the job alone."""

    id: str
    source: str
    destination: str
    registry: str
    repository: str
    tag: str
    digest: str
    rule: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job(JobSpec):
    """One row of the job table: the spec and where the job is in its life."""

    state: JobState = JobState.QUEUED
    attempts: int = 0
    error: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    next_at: float | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    result_digest: str | None = None
    created: float | None = None
    updated: float | None = None
    started: float | None = None
    finished: float | None = None

    @property
    def bytes_saved(self) -> int | None:
        if self.bytes_before is None or self.bytes_after is None:
            return None
        return self.bytes_before - self.bytes_after

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["options"] = dict(self.options)
        out["bytes_saved"] = self.bytes_saved
        return out

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> "Job":
        def num(name: str, kind: Callable[[Any], Any]) -> Any:
            value = row.get(name)
            return None if value in (None, "") else kind(value)
        options = row.get("options") or "{}"
        return cls(
            id=str(row["id"]), source=str(row["source"]), destination=str(row["destination"]),
            registry=str(row["registry"]), repository=str(row["repository"]),
            tag=str(row["tag"]), digest=str(row["digest"]), rule=str(row.get("rule") or ""),
            options=json.loads(options) if isinstance(options, str) else dict(options),
            state=JobState(str(row["state"])), attempts=int(row.get("attempts") or 0),
            error=row.get("error") or None, owner=row.get("owner") or None,
            lease_until=num("lease_until", float), next_at=num("next_at", float),
            bytes_before=num("bytes_before", int), bytes_after=num("bytes_after", int),
            result_digest=row.get("result_digest") or None, created=num("created", float),
            updated=num("updated", float), started=num("started", float),
            finished=num("finished", float))


@dataclass(frozen=True)
class Claim:
    """The result of trying to start a job: the job (now running and ours), or why not."""

    job: Job | None
    reason: str              # CLAIMED, a ClaimRefusal, or the final JobState the job is in


class JobStore(Protocol):
    """The job table; ``SqliteJobStore`` and ``RedisJobStore`` implement it."""

    def create(self, spec: JobSpec) -> bool:
        """Record a new queued job; False if it exists (a failed job is queued again)."""
        ...

    def get(self, job_id: str) -> Job | None:
        ...

    def claim(self, job_id: str, owner: str, lease: float, max_attempts: int) -> Claim:
        """Start the job if it is queued, retrying, or running with an expired lease; a job
        that already used ``max_attempts`` is failed instead."""
        ...

    def heartbeat(self, job_ids: Iterable[str], owner: str, lease: float) -> int:
        """Extend the leases of running jobs we own; returns how many were extended."""
        ...

    def finish(self, job_id: str, owner: str, state: str, error: str | None = None,
               bytes_before: int | None = None, bytes_after: int | None = None,
               result_digest: str | None = None) -> bool:
        """Move our running job to done, failed or skipped."""
        ...

    def retry_later(self, job_id: str, owner: str, error: str, delay: float) -> bool:
        """Our running job failed with a transient error: retrying after ``delay`` s."""
        ...

    def release(self, job_id: str, owner: str) -> bool:
        """Give our running job back (shutdown): queued again, the attempt not counted."""
        ...

    def sweep(self, requeue_after: float) -> list[str]:
        """Re-queue running jobs whose lease expired, and name queued or retrying jobs that
        waited ``requeue_after`` s past their time (their message may be lost): the caller
        sends each returned id a new message."""
        ...

    def recent(self, limit: int = 20, state: str | None = None) -> list[Job]:
        """Most recently updated jobs first."""
        ...

    def counts(self) -> dict[str, int]:
        """Jobs per state."""
        ...

    def totals(self) -> dict[str, int]:
        """The shared counters (COUNTERS)."""
        ...

    def ping(self) -> None:
        """Raise StoreError if the store cannot be used."""
        ...

    def close(self) -> None:
        ...
