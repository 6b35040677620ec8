"""The job table in Redis: a hash per job, sets per state, sorted sets for leases and waiting
jobs, each transition one Lua script (package data in ``lua/``; every script starts with
``prelude.lua``). Leases use the Redis server's clock, so workers on different machines need no
synchronised clocks."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Callable, Iterable, Sequence

from slimmer.hook.store.model import (
    CLAIMED,
    COUNTERS,
    DONE,
    FINAL,
    STATES,
    Claim,
    Job,
    JobSpec,
    StoreError,
)


def _lua(name: str) -> str:
    """A Lua script of this package."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisJobStore:
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
        prelude = _lua("prelude")
        self._scripts = {name: self.r.register_script(prelude + _lua(name)) for name in
                         ("create", "claim", "heartbeat", "finish", "retry", "release", "sweep")}

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
        if status == CLAIMED:
            return Claim(self._job(out[1:]), CLAIMED)
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
