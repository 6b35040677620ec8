"""The registry hook: ``slim serve`` (webhook front), ``slim worker`` (runs jobs) and
``slim jobs`` (lists them), sharing a durable queue (huey on SQLite or Redis) and a job table.

Data flows: registry notification -> ``events`` (parse) -> ``rules`` (decide) -> ``store``
(record, dedupe) -> ``queue`` (huey message) -> ``worker`` (claim, slim, record outcome).
"""

from __future__ import annotations

from .config import HookConfig, QueueConfig, ServerConfig, WorkerConfig, load_config
from .events import EventError, PushEvent, parse_notification
from .rules import Rule, decide
from .store import Job, JobSpec, JobStore, RedisJobStore, SqliteJobStore, StoreError

__all__ = ["HookConfig", "QueueConfig", "ServerConfig", "WorkerConfig", "load_config",
           "EventError", "PushEvent", "parse_notification", "Rule", "decide", "Job", "JobSpec",
           "JobStore", "RedisJobStore", "SqliteJobStore", "StoreError"]
