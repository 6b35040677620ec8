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
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import SlimmerError

QUEUED, RUNNING, RETRYING, DONE, FAILED, SKIPPED = (
    "queued", "running", "retrying", "done", "failed", "skipped")
STATES = (QUEUED, RUNNING, RETRYING, DONE, FAILED, SKIPPED)
FINAL = (DONE, FAILED, SKIPPED)
#: Counters kept in the store, shared by every process (exported as Prometheus counters).
COUNTERS = ("done", "failed", "skipped", "retries", "lost", "bytes_saved")


class StoreError(SlimmerError):
    """The job store (SQLite file or Redis) cannot be reached or used."""


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
class Job:
    """One row of the job table."""

    id: str
    source: str
    destination: str
    registry: str
    repository: str
    tag: str
    digest: str
    rule: str
    options: Mapping[str, Any]
    state: str
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
            state=str(row["state"]), attempts=int(row.get("attempts") or 0),
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
    reason: str


class JobStore:
    """Interface of the job table; see SqliteJobStore and RedisJobStore."""

    def create(self, spec: JobSpec) -> bool:
        """Record a new queued job; False if it exists (a failed job is queued again)."""
        raise NotImplementedError

    def get(self, job_id: str) -> Job | None:
        raise NotImplementedError

    def claim(self, job_id: str, owner: str, lease: float, max_attempts: int) -> Claim:
        """Start the job if it is queued, retrying, or running with an expired lease; a job
        that already used ``max_attempts`` is failed instead."""
        raise NotImplementedError

    def heartbeat(self, job_ids: Iterable[str], owner: str, lease: float) -> int:
        """Extend the leases of running jobs we own; returns how many were extended."""
        raise NotImplementedError

    def finish(self, job_id: str, owner: str, state: str, error: str | None = None,
               bytes_before: int | None = None, bytes_after: int | None = None,
               result_digest: str | None = None) -> bool:
        """Move our running job to done, failed or skipped."""
        raise NotImplementedError

    def retry_later(self, job_id: str, owner: str, error: str, delay: float) -> bool:
        """Our running job failed with a transient error: retrying after ``delay`` s."""
        raise NotImplementedError

    def release(self, job_id: str, owner: str) -> bool:
        """Give our running job back (shutdown): queued again, the attempt not counted."""
        raise NotImplementedError

    def sweep(self, requeue_after: float) -> list[str]:
        """Re-queue running jobs whose lease expired, and name queued or retrying jobs that
        waited ``requeue_after`` s past their time (their message may be lost): the caller
        sends each returned id a new message."""
        raise NotImplementedError

    def recent(self, limit: int = 20, state: str | None = None) -> list[Job]:
        """Most recently updated jobs first."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        """Jobs per state."""
        raise NotImplementedError

    def totals(self) -> dict[str, int]:
        """The shared counters (COUNTERS)."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raise StoreError if the store cannot be used."""
        raise NotImplementedError

    def close(self) -> None:
        pass


# -- SQLite ------------------------------------------------------------------------------------

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


class SqliteJobStore(JobStore):
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
                return Claim(None, "missing")
            error = job.error
            if job.state == RUNNING:
                if (job.lease_until or 0) >= now:
                    return Claim(None, "busy")
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
                return Claim(None, "gave-up")
            db.execute("update slimmer_jobs set state = ?, owner = ?, lease_until = ?, "
                       "attempts = attempts + 1, error = ?, started = ?, updated = ? "
                       "where id = ?", (RUNNING, owner, now + lease, error, now, now, job_id))
            return Claim(self._row(db, job_id), "claimed")
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
            out = {s: 0 for s in STATES}
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


# -- Redis -------------------------------------------------------------------------------------

# Every script starts with this: the key prefix is ARGV[1]; time is the Redis server's, so
# workers on different machines agree on leases without synchronised clocks.
_LUA_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end  -- TIME before writes (< 5.0)
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function setstate(id, key, old, new)
  if old then redis.call('SREM', p .. 'state:' .. old, id) end
  redis.call('SADD', p .. 'state:' .. new, id)
  redis.call('HSET', key, 'state', new, 'updated', string.format('%.6f', now))
  redis.call('ZADD', p .. 'jobs', now, id)
end
local function ts(x) return string.format('%.6f', x) end
"""

_LUA_CREATE = _LUA_PRELUDE + """
local id = ARGV[2]
local key = p .. 'job:' .. id
local old = redis.call('HGET', key, 'state')
if old and old ~= 'failed' then return 0 end
if old then redis.call('SREM', p .. 'state:' .. old, id); redis.call('DEL', key) end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('HSET', key, 'attempts', '0', 'created', ts(now), 'next_at', ts(now))
setstate(id, key, nil, 'queued')
redis.call('ZADD', p .. 'waiting', now, id)
return 1
"""

_LUA_CLAIM = _LUA_PRELUDE + """
local id, owner, lease, max_attempts = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key = p .. 'job:' .. id
local st = redis.call('HGET', key, 'state')
if not st then return {'missing'} end
local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
if st == 'running' then
  if tonumber(redis.call('HGET', key, 'lease_until') or '0') >= now then return {'busy'} end
  redis.call('HSET', key, 'error', 'worker lost: lease expired during attempt ' .. attempts)
  redis.call('HINCRBY', p .. 'counters', 'lost', 1)
elseif st ~= 'queued' and st ~= 'retrying' then
  return {st}
end
redis.call('ZREM', p .. 'leases', id)
redis.call('ZREM', p .. 'waiting', id)
if attempts >= max_attempts then
  local err = redis.call('HGET', key, 'error') or 'unknown error'
  redis.call('HSET', key, 'error', 'gave up after ' .. attempts .. ' attempts: ' .. err,
             'finished', ts(now))
  redis.call('HDEL', key, 'owner', 'lease_until')
  setstate(id, key, st, 'failed')
  redis.call('HINCRBY', p .. 'counters', 'failed', 1)
  return {'gave-up'}
end
redis.call('HSET', key, 'owner', owner, 'lease_until', ts(now + lease),
           'attempts', tostring(attempts + 1), 'started', ts(now))
setstate(id, key, st, 'running')
redis.call('ZADD', p .. 'leases', now + lease, id)
local out = {'claimed'}
for _, v in ipairs(redis.call('HGETALL', key)) do out[#out + 1] = v end
return out
"""

_LUA_HEARTBEAT = _LUA_PRELUDE + """
local owner, lease = ARGV[2], tonumber(ARGV[3])
local n = 0
for i = 4, #ARGV do
  local key = p .. 'job:' .. ARGV[i]
  if redis.call('HGET', key, 'state') == 'running' and redis.call('HGET', key, 'owner') == owner then
    redis.call('HSET', key, 'lease_until', ts(now + lease))
    redis.call('ZADD', p .. 'leases', now + lease, ARGV[i])
    n = n + 1
  end
end
return n
"""

_LUA_FINISH = _LUA_PRELUDE + """
local id, owner, state, saved = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local key = p .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'owner') ~= owner then
  return 0
end
for i = 6, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', key, ARGV[i])
  else redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
redis.call('HSET', key, 'finished', ts(now))
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', p .. 'leases', id)
setstate(id, key, 'running', state)
redis.call('HINCRBY', p .. 'counters', state, 1)
if saved > 0 then redis.call('HINCRBY', p .. 'counters', 'bytes_saved', saved) end
return 1
"""

_LUA_RETRY = _LUA_PRELUDE + """
local id, owner, delay, err = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = p .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'owner') ~= owner then
  return 0
end
redis.call('HSET', key, 'error', err, 'next_at', ts(now + delay))
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', p .. 'leases', id)
redis.call('ZADD', p .. 'waiting', now + delay, id)
setstate(id, key, 'running', 'retrying')
redis.call('HINCRBY', p .. 'counters', 'retries', 1)
return 1
"""

_LUA_RELEASE = _LUA_PRELUDE + """
local id, owner = ARGV[2], ARGV[3]
local key = p .. 'job:' .. id
if redis.call('HGET', key, 'state') ~= 'running' or redis.call('HGET', key, 'owner') ~= owner then
  return 0
end
local attempts = tonumber(redis.call('HGET', key, 'attempts') or '1')
redis.call('HSET', key, 'attempts', tostring(math.max(0, attempts - 1)), 'next_at', ts(now))
redis.call('HDEL', key, 'owner', 'lease_until')
redis.call('ZREM', p .. 'leases', id)
redis.call('ZADD', p .. 'waiting', now, id)
setstate(id, key, 'running', 'queued')
return 1
"""

_LUA_SWEEP = _LUA_PRELUDE + """
local requeue_after = tonumber(ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', '(' .. ts(now))) do
  local key = p .. 'job:' .. id
  redis.call('ZREM', p .. 'leases', id)
  if redis.call('HGET', key, 'state') == 'running' then
    local a = redis.call('HGET', key, 'attempts') or '0'
    redis.call('HSET', key, 'error', 'worker lost: lease expired during attempt ' .. a,
               'next_at', ts(now))
    redis.call('HDEL', key, 'owner', 'lease_until')
    setstate(id, key, 'running', 'queued')
    redis.call('ZADD', p .. 'waiting', now, id)
    redis.call('HINCRBY', p .. 'counters', 'lost', 1)
    out[#out + 1] = id
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'waiting', '-inf',
                               '(' .. ts(now - requeue_after))) do
  local key = p .. 'job:' .. id
  local st = redis.call('HGET', key, 'state')
  if st == 'queued' or st == 'retrying' then
    redis.call('ZADD', p .. 'waiting', now, id)
    redis.call('HSET', key, 'next_at', ts(now))
    out[#out + 1] = id
  else
    redis.call('ZREM', p .. 'waiting', id)
  end
end
return out
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisJobStore(JobStore):
    """The job table in Redis: a hash per job, sets per state, sorted sets for leases and
    waiting jobs, all changed by Lua scripts (atomic, Redis server time)."""

    def __init__(self, url: str, name: str = "slimmer-hook", client: Any = None) -> None:
        try:
            import redis
        except ImportError as exc:
            raise StoreError("the Redis job store needs the 'redis' package "
                             "(pip install 'slimmer[redis]')") from exc
        self._redis_errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self.url = url
        self.prefix = f"slimmer:{name}:"
        self.r = client or redis.Redis.from_url(url)
        self._scripts = {name: self.r.register_script(src) for name, src in (
            ("create", _LUA_CREATE), ("claim", _LUA_CLAIM), ("heartbeat", _LUA_HEARTBEAT),
            ("finish", _LUA_FINISH), ("retry", _LUA_RETRY), ("release", _LUA_RELEASE),
            ("sweep", _LUA_SWEEP))}

    def _call(self, script: str, *args: Any) -> Any:
        try:
            return self._scripts[script](keys=[], args=[self.prefix, *args])
        except self._redis_errors as exc:
            raise StoreError(f"job store {self.url}: {exc}") from exc

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._redis_errors as exc:
            raise StoreError(f"job store {self.url}: {exc}") from exc

    @staticmethod
    def _job(flat: Sequence[Any]) -> Job:
        it = iter(flat)
        return Job.from_mapping({_text(k): _text(v) for k, v in zip(it, it)})

    def create(self, spec: JobSpec) -> bool:
        fields: list[str] = []
        for key, value in (("id", spec.id), ("source", spec.source),
                           ("destination", spec.destination), ("registry", spec.registry),
                           ("repository", spec.repository), ("tag", spec.tag),
                           ("digest", spec.digest), ("rule", spec.rule),
                           ("options", json.dumps(dict(spec.options)))):
            fields += [key, value]
        return bool(self._call("create", spec.id, *fields))

    def get(self, job_id: str) -> Job | None:
        data = self._guard(lambda: self.r.hgetall(self.prefix + "job:" + job_id))
        if not data:
            return None
        return Job.from_mapping({_text(k): _text(v) for k, v in data.items()})

    def claim(self, job_id: str, owner: str, lease: float, max_attempts: int) -> Claim:
        out = self._call("claim", job_id, owner, repr(float(lease)), str(max_attempts))
        status = _text(out[0])
        if status == "claimed":
            return Claim(self._job(out[1:]), "claimed")
        return Claim(None, status)

    def heartbeat(self, job_ids: Iterable[str], owner: str, lease: float) -> int:
        ids = list(job_ids)
        if not ids:
            return 0
        return int(self._call("heartbeat", owner, repr(float(lease)), *ids))

    def finish(self, job_id: str, owner: str, state: str, error: str | None = None,
               bytes_before: int | None = None, bytes_after: int | None = None,
               result_digest: str | None = None) -> bool:
        if state not in FINAL:
            raise ValueError(f"not a final state: {state}")
        saved = 0
        if state == DONE and bytes_before is not None and bytes_after is not None:
            saved = max(0, bytes_before - bytes_after)
        fields: list[str] = []
        for key, value in (("error", error), ("bytes_before", bytes_before),
                           ("bytes_after", bytes_after), ("result_digest", result_digest)):
            fields += [key, "" if value is None else str(value)]
        return bool(self._call("finish", job_id, owner, state, str(saved), *fields))

    def retry_later(self, job_id: str, owner: str, error: str, delay: float) -> bool:
        return bool(self._call("retry", job_id, owner, repr(float(delay)), error))

    def release(self, job_id: str, owner: str) -> bool:
        return bool(self._call("release", job_id, owner))

    def sweep(self, requeue_after: float) -> list[str]:
        return [_text(x) for x in self._call("sweep", repr(float(requeue_after)))]

    def _load(self, ids: Sequence[Any]) -> list[Job]:
        def go() -> list[Job]:
            pipe = self.r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hgetall(self.prefix + "job:" + _text(job_id))
            return [Job.from_mapping({_text(k): _text(v) for k, v in d.items()})
                    for d in pipe.execute() if d]
        return list(self._guard(go))

    def recent(self, limit: int = 20, state: str | None = None) -> list[Job]:
        if state:
            ids = self._guard(lambda: self.r.smembers(self.prefix + "state:" + state))
            jobs = sorted(self._load(list(ids)), key=lambda j: -(j.updated or 0))
            return jobs[:limit]
        return self._load(self._guard(lambda: self.r.zrevrange(self.prefix + "jobs", 0,
                                                                limit - 1)))

    def counts(self) -> dict[str, int]:
        def go() -> dict[str, int]:
            pipe = self.r.pipeline(transaction=False)
            for s in STATES:
                pipe.scard(self.prefix + "state:" + s)
            return dict(zip(STATES, (int(n) for n in pipe.execute())))
        return dict(self._guard(go))

    def totals(self) -> dict[str, int]:
        data = self._guard(lambda: self.r.hgetall(self.prefix + "counters"))
        out = {c: 0 for c in COUNTERS}
        out.update({_text(k): int(v) for k, v in data.items()})
        return out

    def ping(self) -> None:
        self._guard(self.r.ping)

    def close(self) -> None:
        self._guard(self.r.close)
