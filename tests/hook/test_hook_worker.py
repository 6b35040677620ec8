"""The worker with a fake slim function and a real SqliteHuey queue: outcomes, retries with
backoff, the attempt bound, loop prevention by annotation, a lost worker's job completed by
another, release at shutdown; and ``slim jobs``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, cast

import pytest
from click.testing import CliRunner

from slimmer.cli import main
from slimmer.errors import AuthError, InputError, RegistryError, TrustError
from slimmer.hook.config import QueueConfig, WorkerConfig
from slimmer.hook.identity import USER_AGENT_PREFIX
from slimmer.hook.queue import JobQueue
from slimmer.hook.rules import Rule, job_id, job_options, options_to_mapping
from slimmer.hook.store.model import DONE, FAILED, QUEUED, RETRYING, RUNNING, SKIPPED, JobSpec
from slimmer.hook.store.sqlite import SqliteJobStore
from slimmer.hook.worker import TEST_SLEEP_ENV, SlimFn, Worker
from slimmer.oci.media import ANNOT_SOURCE_DIGEST
from slimmer.options import SlimOptions
from slimmer.transports.registry import RegistryOptions
from slimmer.trust import PrivateKey, PublicKey, TrustOptions

from support.hookutil import wait_for

DIGEST = "sha256:" + "ab" * 32
SOURCE = f"127.0.0.1:5000/team/app@{DIGEST}"
DEST = "127.0.0.1:5000/team/app:1.4-slim"


@dataclass
class FakeReport:
    size_before: int = 10_000
    size_after: int | None = 6_000
    digest: str = "sha256:" + "cd" * 32


@dataclass
class FakeSlim:
    """Stands in for slimmer.slim: records calls, raises the queued errors first."""

    errors: list[BaseException] = field(default_factory=list)
    calls: list[tuple[str, str, SlimOptions, RegistryOptions]] = field(default_factory=list)
    trust: list[TrustOptions | None] = field(default_factory=list)

    def __call__(self, source: str, dest: str, options: SlimOptions, *,
                 registry: RegistryOptions, trust: TrustOptions | None) -> FakeReport:
        self.calls.append((source, dest, options, registry))
        self.trust.append(trust)
        if self.errors:
            raise self.errors.pop(0)
        return FakeReport()


class Setup:
    def __init__(self, tmp: Path, slim: FakeSlim, annotations: Mapping[str, str] | None = None,
                 rules: tuple[Rule, ...] = (), **worker: Any) -> None:
        qcfg = QueueConfig(sqlite=str(tmp / "hook.db"))
        self.store = SqliteJobStore(qcfg.sqlite_path)
        self.queue = JobQueue(qcfg)
        cfg = WorkerConfig(**{"backoff": 0.01, "max_backoff": 0.05, "lease": 30, **worker})
        self.worker = Worker(self.store, self.queue, cfg, RegistryOptions(docker_config=False),
                             slim_fn=cast(SlimFn, slim), annotations_fn=lambda s, r: annotations or {},
                             owner="w-test", rules=rules)

    def submit(self, options: SlimOptions = SlimOptions(profiles=("caches",)),
               rule: Rule | None = None) -> str:
        jid = job_id(SOURCE, DEST)
        recorded = job_options(rule) if rule is not None else options_to_mapping(options)
        assert self.store.create(JobSpec(jid, SOURCE, DEST, "127.0.0.1:5000", "team/app",
                                         "1.4", DIGEST, rule.name if rule else "team/*",
                                         recorded))
        self.queue.enqueue(jid)
        return jid

    def drain(self, timeout: float = 5) -> int:
        """Execute queued and due scheduled messages as huey's consumer would."""
        huey = self.queue.huey
        n = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for task in huey.read_schedule():
                huey.enqueue(task)
            task = huey.dequeue()
            if task is None:
                if not huey.scheduled_count():
                    return n
                time.sleep(0.02)
                continue
            huey.execute(task)
            n += 1
        raise AssertionError("queue did not drain")


@pytest.fixture
def slim() -> FakeSlim:
    return FakeSlim()


def test_job_runs_once_and_records_savings(tmp_path: Path, slim: FakeSlim) -> None:
    s = Setup(tmp_path, slim)
    jid = s.submit()
    s.queue.enqueue(jid)                      # a duplicate message is harmless
    assert s.drain() == 2
    assert len(slim.calls) == 1
    source, dest, options, registry = slim.calls[0]
    assert (source, dest, options.profiles) == (SOURCE, DEST, ("caches",))
    assert registry.user_agent.startswith(USER_AGENT_PREFIX)   # the front ignores our pushes
    assert registry.transport is None and slim.trust == [None]
    job = s.store.get(jid)
    assert job is not None and job.state == DONE and job.attempts == 1
    assert job.bytes_saved == 4000 and job.result_digest == FakeReport.digest
    assert s.store.totals()["bytes_saved"] == 4000


def test_registry_errors_are_retried_with_backoff(tmp_path: Path, slim: FakeSlim) -> None:
    slim.errors = [RegistryError("pushing blob: service unavailable (HTTP 503)", 503),
                   ConnectionResetError("connection reset by peer")]
    s = Setup(tmp_path, slim)
    jid = s.submit()
    s.queue.huey.execute(s.queue.huey.dequeue())
    job = s.store.get(jid)
    assert job is not None and job.state == RETRYING and "HTTP 503" in (job.error or "")
    [retry] = s.queue.huey.pending()
    assert retry.eta is not None                           # the retry waits for its backoff
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == DONE and job.attempts == 3
    assert s.store.totals()["retries"] == 2


def test_retries_are_bounded_and_the_failure_is_visible(tmp_path: Path, slim: FakeSlim) -> None:
    slim.errors = [RegistryError(f"attempt {n}: HTTP 502", 502) for n in range(1, 4)]
    s = Setup(tmp_path, slim, max_attempts=3)
    jid = s.submit()
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == FAILED and job.attempts == 3
    assert job.error == "gave up after 3 attempts: attempt 3: HTTP 502"
    assert len(slim.calls) == 3
    out = CliRunner().invoke(main, ["jobs", "--db", str(tmp_path / "hook.db")])
    assert out.exit_code == 0, out.output
    assert "failed" in out.output and "gave up after 3 attempts" in out.output


@pytest.mark.parametrize("error, text", [
    (InputError("reading manifest: unsupported media type"), "unsupported media type"),
    (AuthError("pushing: denied (HTTP 403)", 403), "denied"),
    (TrustError("verifying source x: no signature for x@sha256:ab.."), "no signature"),
    (ValueError("boom"), "internal error: ValueError: boom"),
])
def test_permanent_errors_fail_at_once(tmp_path: Path, slim: FakeSlim, error: Exception,
                                       text: str) -> None:
    slim.errors = [error]
    s = Setup(tmp_path, slim)
    jid = s.submit()
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == FAILED and job.attempts == 1
    assert text in (job.error or "")


def _key_pair(directory: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "sign.pem", directory / "sign.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_the_rules_trust_is_loaded_at_start_and_passed_to_slim(tmp_path: Path,
                                                               slim: FakeSlim) -> None:
    private, public = _key_pair(tmp_path)
    rule = Rule("team/*", "{repo}:{tag}-slim", SlimOptions(profiles=("caches",)),
                name="signed", trust=TrustOptions(verify_keys=(str(public),),
                                                  sign_key=str(private), attach_report=False,
                                                  sign_annotations=(("team", "db"),)))
    s = Setup(tmp_path, slim, rules=(rule,))
    private.unlink()                          # keys were read when the worker started
    public.unlink()
    jid = s.submit(rule=rule)
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == DONE, job
    [trust] = slim.trust
    assert trust is not None and trust.loaded and trust.attach_report is False
    assert [type(k) for k in trust.verify_keys] == [PublicKey]
    assert isinstance(trust.sign_key, PrivateKey)
    assert trust.sign_annotations == (("team", "db"),)
    # The job record names the rule and the key paths, never key material.
    assert job.rule == "signed"
    assert job.options["trust"] == {"verify_keys": [str(public)], "sign_key": str(private),
                                    "attach_report": False}
    assert "BEGIN" not in json.dumps(job.to_dict())


def test_a_bad_key_stops_the_worker_before_any_job(tmp_path: Path, slim: FakeSlim) -> None:
    rule = Rule("team/*", "{repo}:{tag}-slim", name="signed",
                trust=TrustOptions(sign_key=str(tmp_path / "missing.pem")))
    with pytest.raises(TrustError, match=r"^config: rule 'signed': reading private key .*"
                                         r"missing\.pem"):
        Setup(tmp_path, slim, rules=(rule,))


def test_a_job_whose_rule_verifies_never_runs_unverified(tmp_path: Path,
                                                        slim: FakeSlim) -> None:
    _, public = _key_pair(tmp_path)
    rule = Rule("team/*", "{repo}:{tag}-slim", name="verified",
                trust=TrustOptions(verify_keys=(str(public),)))
    s = Setup(tmp_path, slim)                 # a worker whose config lacks the rule
    jid = s.submit(rule=rule)
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == FAILED and job.attempts == 1
    assert "rule 'verified' verifies or signs (verify key" in (job.error or "")
    assert slim.calls == []


def test_images_slimmer_produced_are_skipped(tmp_path: Path, slim: FakeSlim) -> None:
    s = Setup(tmp_path, slim, annotations={ANNOT_SOURCE_DIGEST: "sha256:" + "ee" * 32})
    jid = s.submit()
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == SKIPPED and "slimmer output" in (job.error or "")
    assert slim.calls == []


def test_a_lost_workers_job_is_swept_and_completed_by_another(tmp_path: Path,
                                                              slim: FakeSlim) -> None:
    s = Setup(tmp_path, slim, lease=0.5)
    jid = s.submit()
    s.queue.huey.dequeue()                    # worker A takes the message ...
    assert s.store.claim(jid, "worker-a", 0.5, 5).job is not None   # ... and dies mid-job
    s.worker.maintain()
    assert s.queue.pending() == 0             # lease still valid: nothing to do
    time.sleep(0.6)
    s.worker.maintain()                       # worker B's sweeper
    assert s.queue.pending() == 1
    s.drain()
    job = s.store.get(jid)
    assert job is not None and job.state == DONE and job.attempts == 2
    assert s.store.totals()["lost"] == 1


def test_heartbeat_keeps_the_lease_of_a_running_job(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(source: str, dest: str, options: SlimOptions, *, registry: Any,
             trust: Any) -> FakeReport:
        release.wait(5)
        return FakeReport()
    s = Setup(tmp_path, FakeSlim(), lease=0.9)            # renewed every 0.3 s
    s.worker.slim_fn = cast(SlimFn, slow)
    jid = s.submit()
    task = s.queue.huey.dequeue()
    runner = threading.Thread(target=s.queue.huey.execute, args=(task,))
    runner.start()
    s.worker.start_maintenance()
    try:
        wait_for(lambda: s.worker.running() == [jid], 5, "the job to start")
        time.sleep(1.3)                       # well past the lease
        job = s.store.get(jid)
        assert job is not None and job.state == RUNNING and job.owner == "w-test"
        release.set()
        runner.join(5)
    finally:
        s.worker.stop_maintenance()
    job = s.store.get(jid)
    assert job is not None and job.state == DONE and job.attempts == 1


def test_interrupted_jobs_are_released_and_queued_again(tmp_path: Path, slim: FakeSlim) -> None:
    s = Setup(tmp_path, slim)
    jid = s.submit()
    task = s.queue.huey.dequeue()
    assert s.store.claim(jid, s.worker.owner, 30, 5).job is not None
    s.queue.huey._emit("interrupted", task)    # what huey's consumer does at shutdown
    job = s.store.get(jid)
    assert job is not None and job.state == QUEUED and job.attempts == 0
    assert s.queue.pending() == 1


def test_sigterm_releases_a_job_that_outlives_the_shutdown_timeout(tmp_path: Path) -> None:
    db = tmp_path / "hook.db"
    config = tmp_path / "hook.toml"
    config.write_text("[worker]\nshutdown_timeout = 0.5\nlease = 30\n")
    store = SqliteJobStore(str(db))
    queue = JobQueue(QueueConfig(sqlite=str(db)))
    jid = job_id(SOURCE, DEST)
    store.create(JobSpec(jid, SOURCE, DEST, "127.0.0.1:5000", "team/app", "1.4", DIGEST,
                         "team/*", {}))
    queue.enqueue(jid)
    env = {**os.environ, TEST_SLEEP_ENV: "30"}
    proc = subprocess.Popen([sys.executable, "-m", "slimmer.cli", "worker", "--db", str(db),
                             "--config", str(config), "--log-format", "json",
                             "--registry", "127.0.0.1:5000"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (store.get(jid) or _none()).state == RUNNING, 15, "the job to start")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    job = store.get(jid)
    assert job is not None and job.state == QUEUED and job.attempts == 0
    assert queue.pending() == 1
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any("interrupted by shutdown" in r["message"] and r.get("job") == jid for r in logs)


def _none() -> Any:
    class Nothing:
        state = None
    return Nothing()


def test_jobs_command_lists_json(tmp_path: Path, slim: FakeSlim) -> None:
    s = Setup(tmp_path, slim)
    jid = s.submit()
    s.drain()
    out = CliRunner().invoke(main, ["jobs", "--db", str(tmp_path / "hook.db"), "--json"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert [(r["id"], r["state"], r["bytes_saved"], r["attempts"]) for r in rows] == [
        (jid, DONE, 4000, 1)]
    table = CliRunner().invoke(main, ["jobs", "--db", str(tmp_path / "hook.db")])
    assert jid[:12] in table.output and "3.9 KiB" in table.output and DEST in table.output


def test_serve_needs_a_rule(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "h.db"), "--no-auth"])
    assert out.exit_code == 2 and "no rules" in out.output


def test_serve_without_a_token_does_not_start(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLIM_HOOK_TOKEN", raising=False)
    out = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "h.db"), "--listen",
                                    "127.0.0.1:0", "--rule", "team/*={repo}:{tag}-slim",
                                    "--registry", "registry.example.com"])
    assert out.exit_code == 1 and "no webhook token" in out.output


def test_serve_and_worker_refuse_to_start_without_a_registry(tmp_path: Path) -> None:
    """The registry the hook acts for is configuration: without one nothing starts."""
    for command, extra in (("serve", ["--no-auth", "--listen", "127.0.0.1:0"]), ("worker", [])):
        out = CliRunner().invoke(main, [command, "--db", str(tmp_path / "h.db"), *extra,
                                        *(["--rule", "team/*={repo}:{tag}-slim"]
                                          if command == "serve" else [])])
        assert out.exit_code == 2, out.output
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "no registry configured: give --registry" in lines[0]



@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_stop_on_a_bad_key_before_any_job(tmp_path: Path, command: str) -> None:
    config = tmp_path / "hook.toml"
    config.write_text("[[rules]]\nname = 'signed'\nmatch = 'team/*'\n"
                      "destination = '{repo}:{tag}-slim'\n"
                      f"sign_key = '{tmp_path / 'missing.pem'}'\n")
    extra = ["--no-auth", "--listen", "127.0.0.1:0"] if command == "serve" else []
    out = CliRunner().invoke(main, [command, "--db", str(tmp_path / "h.db"), "--config",
                                    str(config), "--registry", "registry.example.com", *extra])
    assert out.exit_code == 1, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "slim: error: config: rule 'signed': reading private key "), lines
    assert not (tmp_path / "h.db").exists()       # stopped before opening the queue
