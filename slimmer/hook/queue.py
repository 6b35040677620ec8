"""The huey side: one huey instance (SqliteHuey by default, RedisHuey with a Redis URL) with
one task whose only argument is a job id, and the job store that sits beside it.

huey carries the messages (and the delayed ones: retries after a backoff); the job table
carries the state. A message for a job that is not claimable (done, or running elsewhere) is
dropped by the worker, so sending a message twice is always safe.
"""

from __future__ import annotations

from typing import Any, Callable

from huey import RedisHuey, SqliteHuey  # type: ignore[import-untyped]
from huey.api import Huey  # type: ignore[import-untyped]

from slimmer.hook.config import QueueConfig
from slimmer.hook.store.model import JobStore, StoreError
from slimmer.hook.store.redis import RedisJobStore
from slimmer.hook.store.sqlite import SqliteJobStore

TASK_NAME = "slim_job"


class JobQueue:
    """huey plus the job task; ``runner`` executes a job id (set by the worker)."""

    def __init__(self, config: QueueConfig, huey: Huey | None = None) -> None:
        self.config = config
        self.huey = huey or make_huey(config)
        self.runner: Callable[[str], None] | None = None
        self.task = self.huey.task(name=TASK_NAME)(self._run)

    def _run(self, job_id: str) -> None:
        if self.runner is None:
            raise RuntimeError("this process runs no worker")
        self.runner(job_id)

    def enqueue(self, job_id: str, delay: float | None = None) -> None:
        """Send the job a message, now or after ``delay`` seconds."""
        try:
            if delay:
                self.task.schedule((job_id,), delay=delay)
            else:
                self.task(job_id)
        except Exception as exc:  # sqlite3 / redis errors from huey's storage
            raise StoreError(f"queueing job {job_id} on {self.config.describe()}: {exc}") \
                from exc

    def pending(self) -> int:
        """Messages waiting in the queue (not counting delayed retries)."""
        return int(self.huey.pending_count())

    def scheduled(self) -> int:
        """Delayed messages (retries waiting for their backoff)."""
        return int(self.huey.scheduled_count())


def make_huey(config: QueueConfig) -> Huey:
    """SqliteHuey on the configured file, or RedisHuey on the URL; no result storage."""
    if config.redis:
        try:
            return RedisHuey(config.name, url=config.redis, results=False)
        except Exception as exc:
            raise StoreError(f"queue {config.describe()}: {exc}") from exc
    import os
    path = config.sqlite_path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        return SqliteHuey(config.name, filename=path, results=False)
    except Exception as exc:
        raise StoreError(f"queue {config.describe()}: {exc}") from exc


def open_store(config: QueueConfig, **kw: Any) -> JobStore:
    """The job store that belongs to the queue: the same SQLite file or Redis."""
    if config.redis:
        return RedisJobStore(config.redis, config.name)
    return SqliteJobStore(config.sqlite_path, **kw)
