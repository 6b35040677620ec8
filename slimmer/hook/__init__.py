"""The registry hook: ``slim serve`` (webhook front), ``slim worker`` (runs jobs) and
``slim jobs`` (lists them), sharing a durable queue (huey on SQLite or Redis) and a job table.

Data flows: registry notification -> ``events`` (parse) -> ``rules`` (decide) -> ``store``
(record, dedupe) -> ``queue`` (huey message) -> ``worker`` (claim, slim, record outcome).
"""

from __future__ import annotations

from slimmer.hook.config import HookConfig, QueueConfig, ServerConfig, WorkerConfig, load_config
from slimmer.hook.events import EventError, PushEvent, parse_notification
from slimmer.hook.rules import Rule, decide
from slimmer.hook.store.model import Job, JobSpec, JobStore, StoreError
from slimmer.hook.store.sqlite import SqliteJobStore

__all__ = ["HookConfig", "QueueConfig", "ServerConfig", "WorkerConfig", "load_config",
           "EventError", "PushEvent", "parse_notification", "Rule", "decide", "Job", "JobSpec",
           "JobStore", "SqliteJobStore", "StoreError"]
