"""The job table in a SQLite file (WAL mode), next to huey's SQLite queue: one transaction
per state transition (``BEGIN IMMEDIATE``), guarded by state and owner."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from slimmer.hook.store.model import (
    CLAIMED,
    COUNTERS,
    DONE,
    FAILED,
    FINAL,
    QUEUED,
    RETRYING,
    RUNNING,
    STATES,
    Claim,
    ClaimRefusal,
    Job,
    JobSpec,
    StoreError,
)

_SCHEMA = """
create table if not exists slimmer_jobs (
    id text primary key, source text not null, destination text not null,
    registry text not null, repository text not null, tag text not null, digest text not null,
    rule text not null, options text not null, state text not null,
    attempts integer not null default 0, error text, owner text, lease_until real,
    next_at real, bytes_before integer, bytes_after integer, result_digest text,
    created real not null, updated real not null, started real, finished real);
create index if not exists slimmer_jobs_state on slimmer_jobs (state, lease_until);
create index if not exists slimmer_jobs_updated on slimmer_jobs (updated);
create table if not exists slimmer_counters (name text primary key,
                                             value integer not null default 0);
"""
_COLUMNS = ("id", "source", "destination", "registry", "repository", "tag", "digest", "rule",
            "options", "state", "attempts", "error", "owner", "lease_until", "next_at",
            "bytes_before", "bytes_after", "result_digest", "created", "updated", "started",
            "finished")


class SqliteJobStore:
    """The job table in a SQLite file (WAL mode), shared by the processes of one machine."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time,
                 timeout: float = 30.0) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False,
                                         isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            # Switching a new file to WAL needs a write lock the busy timeout does not cover
            # (huey's SqliteStorage retries the same way); processes start side by side.
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self._conn.execute("pragma journal_mode=wal")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            with self._tx() as db:
                db.executescript("begin immediate;" + _SCHEMA + "commit;")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"opening job store {path}: {exc}") from exc

    class _Tx:
        def __init__(self, store: "SqliteJobStore", write: bool) -> None:
            self.store, self.write = store, write

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            if self.write:
                try:
                    self.store._conn.execute("begin immediate")
                except BaseException:
                    self.store._lock.release()
                    raise
            return self.store._conn

        def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
            try:
                if self.write and self.store._conn.in_transaction:
                    self.store._conn.execute("rollback" if kind else "commit")
            finally:
                self.store._lock.release()

    def _tx(self, write: bool = False) -> "SqliteJobStore._Tx":
        return SqliteJobStore._Tx(self, write)

    def _run(self, fn: Callable[[sqlite3.Connection, float], Any], write: bool = True) -> Any:
        try:
            with self._tx(write) as db:
                return fn(db, self.clock())
        except sqlite3.Error as exc:
            raise StoreError(f"job store {self.path}: {exc}") from exc

    @staticmethod
    def _row(db: sqlite3.Connection, job_id: str) -> Job | None:
        row = db.execute("select * from slimmer_jobs where id = ?", (job_id,)).fetchone()
        return Job.from_mapping(dict(row)) if row else None

    @staticmethod
    def _count(db: sqlite3.Connection, name: str, amount: int = 1) -> None:
        db.execute("insert into slimmer_counters (name, value) values (?, ?) on conflict(name) "
                   "do update set value = value + excluded.value", (name, amount))

    def create(self, spec: JobSpec) -> bool:
        def go(db: sqlite3.Connection, now: float) -> bool:
            old = self._row(db, spec.id)
            if old is not None and old.state != FAILED:
                return False
            db.execute("delete from slimmer_jobs where id = ?", (spec.id,))
            db.execute(
                "insert into slimmer_jobs (id, source, destination, registry, repository, tag, "
                "digest, rule, options, state, attempts, next_at, created, updated) values "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (spec.id, spec.source, spec.destination, spec.registry, spec.repository,
                 spec.tag, spec.digest, spec.rule, json.dumps(dict(spec.options)), QUEUED,
                 now, now, now))
            return True
        return bool(self._run(go))

    def get(self, job_id: str) -> Job | None:
        return self._run(lambda db, now: self._row(db, job_id), write=False)  # type: ignore

    def claim(self, job_id: str, owner: str, lease: float, max_attempts: int) -> Claim:
        def go(db: sqlite3.Connection, now: float) -> Claim:
            job = self._row(db, job_id)
            if job is None:
                return Claim(None, ClaimRefusal.MISSING)
            error = job.error
            if job.state == RUNNING:
                if (job.lease_until or 0) >= now:
                    return Claim(None, ClaimRefusal.BUSY)
                error = f"worker lost: lease expired during attempt {job.attempts}"
                self._count(db, "lost")
            elif job.state not in (QUEUED, RETRYING):
                return Claim(None, job.state)
            if job.attempts >= max_attempts:
                db.execute("update slimmer_jobs set state = ?, error = ?, owner = null, "
                           "lease_until = null, finished = ?, updated = ? where id = ?",
                           (FAILED, f"gave up after {job.attempts} attempts: "
                            f"{error or 'unknown error'}", now, now, job_id))
                self._count(db, "failed")
                return Claim(None, ClaimRefusal.GAVE_UP)
            db.execute("update slimmer_jobs set state = ?, owner = ?, lease_until = ?, "
                       "attempts = attempts + 1, error = ?, started = ?, updated = ? "
                       "where id = ?", (RUNNING, owner, now + lease, error, now, now, job_id))
            return Claim(self._row(db, job_id), CLAIMED)
        return self._run(go)  # type: ignore[no-any-return]

    def heartbeat(self, job_ids: Iterable[str], owner: str, lease: float) -> int:
        ids = list(job_ids)
        if not ids:
            return 0

        def go(db: sqlite3.Connection, now: float) -> int:
            n = 0
            for job_id in ids:
                n += db.execute("update slimmer_jobs set lease_until = ? where id = ? and "
                                "owner = ? and state = ?",
                                (now + lease, job_id, owner, RUNNING)).rowcount
            return n
        return int(self._run(go))

    def finish(self, job_id: str, owner: str, state: str, error: str | None = None,
               bytes_before: int | None = None, bytes_after: int | None = None,
               result_digest: str | None = None) -> bool:
        if state not in FINAL:
            raise ValueError(f"not a final state: {state}")

        def go(db: sqlite3.Connection, now: float) -> bool:
            n = db.execute(
                "update slimmer_jobs set state = ?, error = ?, bytes_before = ?, "
                "bytes_after = ?, result_digest = ?, owner = null, lease_until = null, "
                "finished = ?, updated = ? where id = ? and owner = ? and state = ?",
                (state, error, bytes_before, bytes_after, result_digest, now, now, job_id,
                 owner, RUNNING)).rowcount
            if n:
                self._count(db, state)
                if state == DONE and bytes_before is not None and bytes_after is not None:
                    self._count(db, "bytes_saved", max(0, bytes_before - bytes_after))
            return bool(n)
        return bool(self._run(go))

    def retry_later(self, job_id: str, owner: str, error: str, delay: float) -> bool:
        def go(db: sqlite3.Connection, now: float) -> bool:
            n = db.execute("update slimmer_jobs set state = ?, error = ?, next_at = ?, "
                           "owner = null, lease_until = null, updated = ? where id = ? and "
                           "owner = ? and state = ?",
                           (RETRYING, error, now + delay, now, job_id, owner, RUNNING)).rowcount
            if n:
                self._count(db, "retries")
            return bool(n)
        return bool(self._run(go))

    def release(self, job_id: str, owner: str) -> bool:
        def go(db: sqlite3.Connection, now: float) -> bool:
            return bool(db.execute(
                "update slimmer_jobs set state = ?, attempts = max(0, attempts - 1), "
                "owner = null, lease_until = null, next_at = ?, updated = ? where id = ? and "
                "owner = ? and state = ?", (QUEUED, now, now, job_id, owner, RUNNING)).rowcount)
        return bool(self._run(go))

    def sweep(self, requeue_after: float) -> list[str]:
        def go(db: sqlite3.Connection, now: float) -> list[str]:
            expired = [r["id"] for r in db.execute(
                "select id from slimmer_jobs where state = ? and lease_until < ?",
                (RUNNING, now))]
            for job_id in expired:
                db.execute("update slimmer_jobs set state = ?, error = 'worker lost: lease "
                           "expired during attempt ' || attempts, owner = null, "
                           "lease_until = null, next_at = ?, updated = ? where id = ?",
                           (QUEUED, now, now, job_id))
            if expired:
                self._count(db, "lost", len(expired))
            stale = [r["id"] for r in db.execute(
                "select id from slimmer_jobs where state in (?, ?) and next_at < ?",
                (QUEUED, RETRYING, now - requeue_after))]
            for job_id in stale:
                db.execute("update slimmer_jobs set next_at = ? where id = ?", (now, job_id))
            return expired + stale
        return list(self._run(go))

    def recent(self, limit: int = 20, state: str | None = None) -> list[Job]:
        def go(db: sqlite3.Connection, now: float) -> list[Job]:
            if state:
                rows = db.execute("select * from slimmer_jobs where state = ? order by "
                                  "updated desc limit ?", (state, limit))
            else:
                rows = db.execute("select * from slimmer_jobs order by updated desc limit ?",
                                  (limit,))
            return [Job.from_mapping(dict(r)) for r in rows]
        return list(self._run(go, write=False))

    def counts(self) -> dict[str, int]:
        def go(db: sqlite3.Connection, now: float) -> dict[str, int]:
            out: dict[str, int] = {s: 0 for s in STATES}
            for row in db.execute("select state, count(*) from slimmer_jobs group by state"):
                out[row[0]] = row[1]
            return out
        return dict(self._run(go, write=False))

    def totals(self) -> dict[str, int]:
        def go(db: sqlite3.Connection, now: float) -> dict[str, int]:
            out = {c: 0 for c in COUNTERS}
            for row in db.execute("select name, value from slimmer_counters"):
                out[row[0]] = row[1]
            return out
        return dict(self._run(go, write=False))

    def ping(self) -> None:
        self._run(lambda db, now: db.execute("select 1").fetchone(), write=False)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
