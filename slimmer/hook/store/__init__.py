"""The job table beside huey's queue: the job model (states, ``JobStore`` protocol) and its
SQLite and Redis implementations."""

from __future__ import annotations

from slimmer.hook.store.model import (
    COUNTERS,
    FINAL,
    STATES,
    Claim,
    Job,
    JobSpec,
    JobState,
    JobStore,
    StoreError,
)
from slimmer.hook.store.sqlite import SqliteJobStore

__all__ = ["COUNTERS", "FINAL", "STATES", "Claim", "Job", "JobSpec", "JobState", "JobStore",
           "RedisJobStore", "SqliteJobStore", "StoreError"]


def __getattr__(name: str) -> object:
    """The Redis store loads on first use (it needs the optional redis package)."""
    if name == "RedisJobStore":
        from slimmer.hook.store.redis import RedisJobStore
        return RedisJobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
