"""The job table's state machine, the same tests on SQLite and on a real Redis server:
dedupe, claims and leases, expiry and sweeping, retries, the attempt bound, release."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from slimmer.hook.store.model import DONE, FAILED, QUEUED, RETRYING, RUNNING, JobSpec, JobStore
from slimmer.hook.store.redis import RedisJobStore
from slimmer.hook.store.sqlite import SqliteJobStore

from support.hookutil import RedisServer, redis_missing, run_redis

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if redis_missing():
        pytest.skip(str(redis_missing()))
    yield from run_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        s: JobStore = SqliteJobStore(str(tmp_path / "hook.db"))
    else:
        server = request.getfixturevalue("redis_server")
        s = RedisJobStore(server.url, f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()


def spec(n: int = 1) -> JobSpec:
    return JobSpec(f"job{n}", f"127.0.0.1:5000/team/app@{DIGEST}",
                   f"127.0.0.1:5000/team/app:{n}-slim", "127.0.0.1:5000", "team/app", str(n),
                   DIGEST, "team/*", {"profiles": ["caches"], "compression": "zstd"})


def test_create_dedupes(store: JobStore) -> None:
    assert store.create(spec()) is True
    assert store.create(spec()) is False
    job = store.get("job1")
    assert job is not None and job.state == QUEUED and job.attempts == 0
    assert job.options == {"profiles": ["caches"], "compression": "zstd"}
    assert store.counts()[QUEUED] == 1


def test_claim_finish_and_counters(store: JobStore) -> None:
    store.create(spec())
    claim = store.claim("job1", "w1", 30, 5)
    assert claim.reason == "claimed" and claim.job is not None
    assert claim.job.state == RUNNING and claim.job.owner == "w1" and claim.job.attempts == 1
    assert store.claim("job1", "w2", 30, 5).reason == "busy"
    assert store.finish("job1", "w2", DONE) is False           # not the owner
    assert store.finish("job1", "w1", DONE, bytes_before=1000, bytes_after=400,
                        result_digest="sha256:" + "cd" * 32)
    job = store.get("job1")
    assert job is not None and job.state == DONE and job.bytes_saved == 600
    assert job.owner is None and job.result_digest == "sha256:" + "cd" * 32
    assert store.claim("job1", "w2", 30, 5).reason == DONE
    assert store.create(spec()) is False                        # done jobs stay deduped
    totals = store.totals()
    assert totals["done"] == 1 and totals["bytes_saved"] == 600
    assert store.claim("nope", "w1", 30, 5).reason == "missing"


def test_expired_lease_is_swept_and_reclaimed(store: JobStore) -> None:
    store.create(spec())
    store.claim("job1", "w1", 0.5, 5)
    assert store.sweep(900) == []
    time.sleep(0.6)
    assert store.sweep(900) == ["job1"]
    job = store.get("job1")
    assert job is not None and job.state == QUEUED and "worker lost" in (job.error or "")
    claim = store.claim("job1", "w2", 30, 5)
    assert claim.job is not None and claim.job.attempts == 2 and claim.job.owner == "w2"
    assert store.finish("job1", "w1", DONE) is False            # the lost worker comes back
    assert store.totals()["lost"] == 1


def test_expired_lease_can_be_claimed_without_a_sweep(store: JobStore) -> None:
    store.create(spec())
    store.claim("job1", "w1", 0.1, 5)
    time.sleep(0.2)
    claim = store.claim("job1", "w2", 30, 5)
    assert claim.job is not None and claim.job.attempts == 2


def test_heartbeat_keeps_a_long_job(store: JobStore) -> None:
    store.create(spec())
    store.claim("job1", "w1", 0.4, 5)
    for _ in range(5):
        time.sleep(0.1)
        assert store.heartbeat(["job1"], "w1", 0.4) == 1
        assert store.sweep(900) == []                       # 0.5 s in: alive thanks to beats
    assert store.heartbeat(["job1"], "w2", 0.4) == 0
    job = store.get("job1")
    assert job is not None and job.state == RUNNING


def test_attempts_are_bounded_even_when_workers_keep_dying(store: JobStore) -> None:
    store.create(spec())
    for _ in range(2):
        assert store.claim("job1", "w", 0.05, 2).job is not None
        time.sleep(0.1)
    claim = store.claim("job1", "w", 0.05, 2)
    assert claim.job is None and claim.reason == "gave-up"
    job = store.get("job1")
    assert job is not None and job.state == FAILED
    assert job.error is not None and job.error.startswith("gave up after 2 attempts: worker lost")
    assert store.totals()["failed"] == 1


def test_retry_later_then_claim_again(store: JobStore) -> None:
    store.create(spec())
    store.claim("job1", "w1", 30, 5)
    assert store.retry_later("job1", "w1", "registry said 503", 5.0)
    job = store.get("job1")
    assert job is not None and job.state == RETRYING and job.error == "registry said 503"
    assert job.next_at is not None and job.owner is None
    claim = store.claim("job1", "w2", 30, 5)
    assert claim.job is not None and claim.job.attempts == 2
    assert store.totals()["retries"] == 1


def test_release_gives_the_attempt_back(store: JobStore) -> None:
    store.create(spec())
    store.claim("job1", "w1", 30, 5)
    assert store.release("job1", "w2") is False
    assert store.release("job1", "w1") is True
    job = store.get("job1")
    assert job is not None and job.state == QUEUED and job.attempts == 0


def test_sweep_resends_jobs_that_waited_too_long_once_per_period(store: JobStore) -> None:
    store.create(spec())
    assert store.sweep(0.5) == []
    time.sleep(0.6)
    assert store.sweep(0.5) == ["job1"]
    assert store.sweep(0.5) == []


def test_failed_jobs_can_be_queued_again_by_a_new_event(store: JobStore) -> None:
    store.create(spec())
    store.claim("job1", "w1", 30, 5)
    store.finish("job1", "w1", FAILED, error="manifest unknown")
    assert store.create(spec()) is True
    job = store.get("job1")
    assert job is not None and job.state == QUEUED and job.attempts == 0 and job.error is None


def test_recent_lists_newest_first_and_filters(store: JobStore) -> None:
    for n in range(1, 4):
        store.create(spec(n))
        time.sleep(0.01)
    store.claim("job2", "w", 30, 5)
    assert [j.id for j in store.recent(10)] == ["job2", "job3", "job1"]
    assert [j.id for j in store.recent(1)] == ["job2"]
    assert [j.id for j in store.recent(10, QUEUED)] == ["job3", "job1"]
    assert store.counts()[QUEUED] == 2 and store.counts()[RUNNING] == 1
    store.ping()
