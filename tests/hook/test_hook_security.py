"""Hook security end to end, with the real registry and real ``slim serve``/``slim worker``
processes: an event cannot steer the worker to another host or make it hand out credentials,
invalid events do not stall a sender, a flood gets 503 and is processed when the registry
delivers again, and reconciling finds a tag whose notification never arrived."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from slimmer.hook.config import QueueConfig
from slimmer.hook.rules import job_id
from slimmer.hook.store.model import DONE, FAILED, JobSpec

from support.hookstack import TOKEN, Stack
from support.hookutil import Trap, wait_for
from support.registry_server import missing

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
USER, PASSWORD = "slim", "topsecret"
CREDS = f"{USER}:{PASSWORD}"
DIGEST = "sha256:" + "ab" * 32
HEADERS = {"Authorization": f"Bearer {TOKEN}",
           "Content-Type": "application/vnd.docker.distribution.events.v1+json"}

CONFIG = """
[server]
listen = "127.0.0.1:{port}"
max_queued = {max_queued}

[registry]
hosts = ["{registry}"]

[worker]
lease = 1.5
backoff = 0.5

[[rules]]
match = "team/*"
destination = "{{repo}}:{{tag}}-slim"
profiles = ["caches", "docs"]
"""


def event(host: str, url_host: str | None = None, repo: str = "team/app", tag: str = "1.0",
          digest: str = DIGEST) -> dict[str, Any]:
    target: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": digest, "size": 500, "repository": repo, "tag": tag}
    if url_host is not None:
        target["url"] = f"http://{url_host}/v2/{repo}/manifests/{digest}"
    return {"id": "e", "timestamp": "2026-12-01T00:00:00Z", "action": "push", "target": target,
            "request": {"id": "r", "addr": "10.0.0.1:1", "host": host, "method": "PUT",
                        "useragent": "docker/27"}}


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[Stack]:
    """A registry that needs a login, the hook serving it with ``--creds`` and one job thread
    in the serve process (so a job would run at once if one were queued)."""
    db = str(tmp_path / "hook.db")
    s = Stack(tmp_path, ["--db", db], QueueConfig(sqlite=db), CONFIG, max_queued=100,
              serve_args=("--workers", "1"), env={"SLIM_CREDS": CREDS},
              users={USER: PASSWORD})
    try:
        yield s
    finally:
        s.stop()


def warnings(stack: Stack, name: str = "serve") -> list[str]:
    return [r["message"] for r in stack.log_records(name) if r.get("level") == "warning"]


def test_events_naming_other_hosts_never_reach_them(secure: Stack, trap: Trap) -> None:
    """``target.url``, ``request.host`` or Harbor's ``resource_url`` naming a host that is not
    configured: a warning, no job, and not one connection to that host."""
    bodies = [
        {"events": [event(trap.host, trap.host)]},                 # both name the trap
        {"events": [event(trap.host)]},                            # only request.host
        {"events": [event(secure.registry.host, trap.host)]},      # only target.url
        {"events": [event(trap.host, secure.registry.host)]},      # served url, foreign host
        {"type": "PUSH_ARTIFACT", "event_data": {
            "resources": [{"digest": DIGEST, "tag": "1.0",
                           "resource_url": f"{trap.host}/team/app:1.0"}],
            "repository": {"repo_full_name": "team/app"}}},
    ]
    for body in bodies:
        ctype = "application/json" if "type" in body else HEADERS["Content-Type"]
        r = secure.http.post("/notifications", content=json.dumps(body),
                             headers={**HEADERS, "Content-Type": ctype})
        assert r.status_code == 202
        assert r.json()["queued"] == [] and "does not serve" in r.json()["ignored"][0]["reason"]
    time.sleep(2)          # long enough for an embedded worker to act, if it had a job
    assert trap.connections == []
    assert secure.store.recent(10) == []
    assert len([w for w in warnings(secure) if "does not serve" in w]) == len(bodies)
    assert 'slimmer_hook_events_total{outcome="foreign"} 5' in secure.metrics()


def test_a_job_naming_another_host_fails_without_a_connection(secure: Stack,
                                                              trap: Trap) -> None:
    """Defence in depth: a job in the table whose source is elsewhere (a front with another
    config wrote it) fails in the worker before any request."""
    source = f"{trap.host}/team/app@{DIGEST}"
    dest = f"{trap.host}/team/app:1.0-slim"
    jid = job_id(source, dest)
    secure.store.create(JobSpec(jid, source, dest, trap.host, "team/app", "1.0", DIGEST,
                                "team/*", {}))
    from slimmer.hook.queue import JobQueue
    JobQueue(QueueConfig(sqlite=str(secure.tmp / "hook.db"))).enqueue(jid)
    job = wait_for(lambda: (j := secure.store.get(jid)) and j.state == FAILED and j, 20,
                   "the job to fail")
    assert "is not one this hook serves" in (job.error or "")
    assert trap.connections == []


def test_the_served_registry_is_slimmed_with_credentials_sent_only_there(
        secure: Stack, trap: Trap) -> None:
    secure.push("team/app:2.0", creds=CREDS)
    job = wait_for(lambda: secure.job_for("team/app", "2.0", DONE), 60, "the slim job")
    assert job.destination == f"{secure.registry.host}/team/app:2.0-slim"
    assert secure.has_tag("team/app", "2.0-slim")
    assert trap.connections == []


def test_invalid_events_are_skipped_and_the_rest_of_the_envelope_counts(secure: Stack) -> None:
    body = {"events": [event(secure.registry.host, repo="Team/../x"),
                       event(secure.registry.host, tag="bad tag"), 7,
                       event(secure.registry.host, tag="3.0", digest="sha256:" + "cd" * 32)]}
    r = secure.http.post("/notifications", content=json.dumps(body), headers=HEADERS)
    assert r.status_code == 202
    assert [q["tag"] for q in r.json()["queued"]] == ["3.0"]
    reasons = [w for w in warnings(secure) if "invalid event" in w]
    assert len(reasons) == 3 and any("invalid repository name" in w for w in reasons)
    assert 'slimmer_hook_events_total{outcome="invalid"} 3' in secure.metrics()
    # a body that is not a notification at all is still a 400
    assert secure.http.post("/notifications", content=b'{"hello": 1}',
                            headers=HEADERS).status_code == 400


def test_a_flood_past_max_queued_gets_503_and_is_processed_on_redelivery(
        tmp_path: Path) -> None:
    """With one job allowed to wait and no worker, the registry's later notifications get 503;
    distribution delivers them again (backoff 1 s) and once a worker drains the queue every
    push becomes a job and a slim image."""
    db = str(tmp_path / "hook.db")
    stack = Stack(tmp_path, ["--db", db], QueueConfig(sqlite=db), CONFIG, max_queued=1)
    try:
        for tag in ("1", "2", "3"):
            stack.push(f"team/flood:{tag}")
        wait_for(lambda: "slimmer_hook_busy_total 0" not in stack.metrics(), 30,
                 "a notification refused with 503")
        assert len(stack.store.recent(10)) == 1
        stack.worker("worker")
        for tag in ("1", "2", "3"):
            wait_for(lambda: stack.job_for("team/flood", tag, DONE), 90,
                     f"team/flood:{tag} to be slimmed")
            assert stack.has_tag("team/flood", f"{tag}-slim")
        assert "code=\"503\"" in stack.metrics()
    finally:
        stack.stop()


def test_reconcile_queues_a_tag_whose_notification_never_arrived(tmp_path: Path) -> None:
    db = str(tmp_path / "hook.db")
    stack = Stack(tmp_path, ["--db", db], QueueConfig(sqlite=db), CONFIG, max_queued=100)
    try:
        stack.push("team/late:1")
        first = wait_for(lambda: stack.job_for("team/late", "1"), 20, "the notification")
        stack.serve.terminate()                 # from here on, notifications are lost
        stack.serve.wait(timeout=20)
        stack.push("team/late:2")
        stack.push("other/app:1")               # no rule matches: never queued
        worker = stack.worker("worker")
        wait_for(lambda: stack.job_for("team/late", "1", DONE), 60, "tag 1 slimmed")
        assert stack.job_for("team/late", "2") is None
        out = subprocess.run(
            [sys.executable, "-m", "slimmer.cli", "jobs", "--reconcile", "--config",
             str(stack.config), "--db", db, "--json"],
            env=stack.env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        found = json.loads(out.stdout)
        # team/late:1 is slimmed, team/late:1-slim is the rule's own output; only 2 is new
        assert found["up_to_date"] == 1 and [q["tag"] for q in found["queued"]] == ["2"]
        job = wait_for(lambda: stack.job_for("team/late", "2", DONE), 60, "tag 2 slimmed")
        assert job.id != first.id and stack.has_tag("team/late", "2-slim")
        assert stack.job_for("other/app", "1") is None
        worker.terminate()
    finally:
        stack.stop()
