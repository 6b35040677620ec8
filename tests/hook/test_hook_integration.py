"""End to end: the real CNCF registry notifies a running ``slim serve``; ``slim worker``
processes slim what skopeo pushed. Duplicate deliveries make one job, a worker killed with
SIGKILL mid-job loses nothing, SIGTERM lets a running job finish, and two workers on a real
Redis run every job exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from slimmer.build.cache import LayerCache
from slimmer.hook.config import QueueConfig
from slimmer.hook.store.model import DONE, RUNNING, Job
from slimmer.hook.worker import TEST_SLEEP_ENV
from slimmer.oci.media import ANNOT_SOURCE_DIGEST

from support.hookstack import CONFIG, EXAMPLE, TOKEN, Stack
from support.hookutil import RedisServer, redis_missing, run_redis, wait_for
from support.registry_server import missing, skopeo

pytestmark = [pytest.mark.integration, pytest.mark.skipif(missing() is not None,
                                                          reason=str(missing()))]
def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=30)


def inspect_raw(ref: str) -> Any:
    return json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("hook")
    s = Stack(tmp, ["--db", str(tmp / "hook.db")], QueueConfig(sqlite=str(tmp / "hook.db")))
    try:
        yield s
    finally:
        s.stop()


def test_push_is_slimmed_once_despite_duplicate_deliveries(stack: Stack) -> None:
    stack.push("team/app:1.0")
    job = wait_for(lambda: stack.job_for("team/app", "1.0"), 20, "the registry's notification")
    assert job.state == "queued"                       # no worker yet
    # The registry retries and may deliver an envelope twice: send the same event again.
    event = {"events": [{
        "id": "dup", "timestamp": "2026-11-24T15:14:03Z", "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": job.digest, "size": 1, "length": 1, "repository": "team/app",
                   "url": f"http://{stack.registry.host}/v2/team/app/manifests/{job.digest}",
                   "tag": "1.0"},
        "request": {"id": "r", "addr": "127.0.0.1:1", "host": stack.registry.host,
                    "method": "PUT", "useragent": "skopeo"}}]}
    headers = {"Authorization": f"Bearer {TOKEN}",
               "Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    for _ in range(2):
        r = stack.http.post("/notifications", content=json.dumps(event), headers=headers)
        assert r.status_code == 202 and r.json()["duplicates"][0]["job"] == job.id
    assert [j.id for j in stack.store.recent(100) if j.repository == "team/app"] == [job.id]

    worker = stack.worker("worker-first")
    wait_for(lambda: stack.job_for("team/app", "1.0", DONE), 60, "the job to finish")
    assert stack.has_tag("team/app", "1.0-slim")
    raw = inspect_raw(f"{stack.registry.host}/team/app:1.0-slim")
    assert raw["annotations"][ANNOT_SOURCE_DIGEST] == job.digest
    done = stack.job_for("team/app", "1.0", DONE)
    assert done is not None and done.attempts == 1 and (done.bytes_saved or 0) > 0
    # The worker recorded what it built in the layer cache of its environment.
    cache = LayerCache(os.path.join(stack.env["XDG_CACHE_HOME"], "slimmer", "layers.db"))
    assert cache.count()[0] >= 1
    # The hook's own push of 1.0-slim comes back as an event and is ignored.
    wait_for(lambda: 'outcome="own"} 1' in stack.metrics(), 20, "the slim push's event")
    text = stack.metrics()
    assert 'slimmer_hook_jobs_finished_total{state="done"} 1' in text
    assert f"slimmer_hook_bytes_saved_total {done.bytes_saved}" in text
    assert len([j for j in stack.store.recent(100) if j.repository == "team/app"]) == 1
    assert stop(worker) == 0


def test_worker_killed_mid_job_is_completed_after_restart(stack: Stack) -> None:
    slow = stack.worker("worker-killed", **{TEST_SLEEP_ENV: "60"})
    stack.push("team/slow:1.0")
    wait_for(lambda: stack.job_for("team/slow", "1.0", RUNNING), 30, "the job to start")
    slow.send_signal(signal.SIGKILL)
    slow.wait(timeout=10)
    worker = stack.worker("worker-restarted")
    job = wait_for(lambda: stack.job_for("team/slow", "1.0", DONE), 60, "the job to finish")
    assert job.attempts == 2 and job.error is None
    assert stack.has_tag("team/slow", "1.0-slim")
    assert stack.store.totals()["lost"] == 1
    assert stop(worker) == 0


def test_sigterm_lets_the_running_job_finish(stack: Stack) -> None:
    worker = stack.worker("worker-graceful", **{TEST_SLEEP_ENV: "1.5"})
    stack.push("team/grace:1.0")
    wait_for(lambda: stack.job_for("team/grace", "1.0", RUNNING), 30, "the job to start")
    assert stop(worker) == 0
    job = stack.job_for("team/grace", "1.0")
    assert job is not None and job.state == DONE and job.attempts == 1
    assert stack.has_tag("team/grace", "1.0-slim")


TRUST_CONFIG = CONFIG.split("[[rules]]")[0] + """
[[rules]]
name = "verified"
match = "verified/*"
destination = "{{repo}}:{{tag}}-slim"
verify_keys = ["{verify_key}"]

[[rules]]
name = "signed"
match = "signed/*"
destination = "{{repo}}:{{tag}}-slim"
sign_key = "{sign_key}"
sign_key_password_env = "HOOK_SIGN_PASSWORD"
sign_annotations = {{ pipeline = "hook" }}
"""


def _keys(directory: Path, password: str) -> dict[str, Path]:
    """``source``: unencrypted, signs the one source that verifies; ``sign``: encrypted with
    ``password``, the hook's signing key; each with its ``.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    pem = serialization.Encoding.PEM
    out = {}
    for name, enc in (("source", serialization.NoEncryption()),
                      ("sign", serialization.BestAvailableEncryption(password.encode()))):
        key = ec.generate_private_key(ec.SECP256R1())
        out[name] = directory / f"{name}.pem"
        out[name].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, enc))
        out[name + ".pub"] = directory / f"{name}.pub"
        out[name + ".pub"].write_bytes(key.public_key().public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


def test_rules_verify_sources_and_sign_results(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from slimmer.cli import main
    from slimmer.oci.refs import parse_registry_reference
    from slimmer.transports.registry import RegistryOptions
    from slimmer.transports.registry.repository import Repository
    from slimmer.trust import load_private_key_file, load_public_key_file
    from slimmer.trust.remote import sign_remote, verify_remote

    keys = _keys(tmp_path, "hook secret")
    db = str(tmp_path / "hook.db")
    s = Stack(tmp_path, ["--db", db], QueueConfig(sqlite=db), TRUST_CONFIG,
              verify_key=keys["source.pub"], sign_key=keys["sign"])
    try:
        # Keys are loaded at start-up: without the password the worker stops at once.
        bad = subprocess.run([sys.executable, "-m", "slimmer.cli", "worker", "--config",
                              str(s.config), "--db", db], env=s.env, capture_output=True,
                             text=True, timeout=30, check=False)
        assert bad.returncode == 1, bad.stderr
        assert bad.stderr.strip().splitlines() == [
            ("slim: error: config: rule 'signed': key password: environment variable "
             "HOOK_SIGN_PASSWORD is not set")]
        # Queued before a worker runs: an unsigned and a signed source (different digests:
        # a signature is per digest), and one to sign.
        skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", EXAMPLE,
               f"docker://{s.registry.host}/verified/app:1")
        s.push("verified/app:2")
        s.push("signed/app:1")
        options = RegistryOptions(docker_config=False)
        good = wait_for(lambda: s.job_for("verified/app", "2"), 20, "the push's notification")
        with Repository.open(parse_registry_reference(f"{s.registry.host}/verified/app"),
                              options, push=True) as repo:
            sign_remote(repo, good.digest, load_private_key_file(keys["source"]))
        s.worker("worker-trust", HOOK_SIGN_PASSWORD="hook secret")

        # No valid signature: failed at once, nothing pushed, the reason in `slim jobs`.
        unsigned = wait_for(lambda: s.job_for("verified/app", "1", "failed"), 30,
                            "the unsigned source's job to fail")
        assert unsigned.attempts == 1 and "no signature" in (unsigned.error or "")
        assert not s.has_tag("verified/app", "1-slim")
        out = CliRunner().invoke(main, ["jobs", "--db", db, "--state", "failed"])
        assert out.exit_code == 0 and "error: verifying source" in out.output, out.output

        assert wait_for(lambda: s.job_for("verified/app", "2", DONE), 30, "the signed source")
        assert s.has_tag("verified/app", "2-slim")

        # The signing rule's output carries a signature slimmer.trust accepts.
        signed = wait_for(lambda: s.job_for("signed/app", "1", DONE), 30, "the signing job")
        assert signed.result_digest and signed.options["trust"] == {
            "verify_keys": [], "sign_key": str(keys["sign"])}
        with Repository.open(parse_registry_reference(f"{s.registry.host}/signed/app:1-slim"),
                              options) as repo:
            result = verify_remote(repo, signed.result_digest,
                                   [load_public_key_file(keys["sign.pub"])]).require_valid()
        [check] = result.valid
        assert check.payload is not None and check.payload.optional is not None
        assert check.payload.optional["pipeline"] == "hook"
        assert check.payload.optional["source"] == \
            f"{s.registry.host}/signed/app@{signed.digest}"
    finally:
        s.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if redis_missing():
        pytest.skip(str(redis_missing()))
    yield from run_redis(tmp_path_factory.mktemp("redis"))


def test_two_workers_on_redis_run_each_job_exactly_once(
        tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> None:
    tmp = tmp_path_factory.mktemp("hook-redis")
    s = Stack(tmp, ["--redis", redis_server.url], QueueConfig(redis=redis_server.url))
    try:
        for name in ("worker-a", "worker-b"):
            s.worker(name, **{TEST_SLEEP_ENV: "0.5"})
        for name in ("worker-a", "worker-b"):   # both listening before the first push
            wait_for(lambda: any(" started: " in r["message"] and "job" not in r
                                 for r in s.log_records(name)), 30, f"{name} to start")
        tags = [str(n) for n in range(1, 6)]
        for tag in tags:
            s.push(f"team/multi:{tag}")
        def all_done() -> list[Job] | None:
            jobs = [s.job_for("team/multi", t, DONE) for t in tags]
            return [j for j in jobs if j is not None] if all(jobs) else None
        jobs = wait_for(all_done, 90, "all jobs to finish")
        assert all(j.attempts == 1 for j in jobs)
        assert all(s.has_tag("team/multi", f"{t}-slim") for t in tags)
        started: dict[str, list[str]] = {}
        for name in ("worker-a", "worker-b"):
            for record in s.log_records(name):
                if record["message"].startswith("job ") and " started: " in record["message"]:
                    started.setdefault(record["job"], []).append(name)
        assert sorted(started) == sorted(j.id for j in jobs)
        assert all(len(names) == 1 for names in started.values()), started
        assert {n for names in started.values() for n in names} == {"worker-a", "worker-b"}
        assert s.store.totals()["done"] == len(tags)
        assert all(stop(w) == 0 for w in s.workers)
    finally:
        s.stop()
