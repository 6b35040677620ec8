"""A running hook for integration tests: the real CNCF registry notifying a ``slim serve``
process (``--workers 0`` unless told otherwise), ``slim worker`` processes on demand, the job
store to look into."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from slimmer.hook.config import QueueConfig
from slimmer.hook.queue import open_store
from slimmer.hook.store.model import Job, JobStore
from slimmer.hook.worker import TEST_SLEEP_ENV

from support.hookutil import NotifyingRegistry, wait_for
from support.registry_server import free_port, skopeo

EXAMPLE = "oci:testdata/example:latest"
TOKEN = "integration-secret"

CONFIG = """
[server]
listen = "127.0.0.1:{port}"

[registry]
hosts = ["{registry}"]

[worker]
lease = 1.5
backoff = 0.5
shutdown_timeout = 20

[[rules]]
match = "team/*"
destination = "{{repo}}:{{tag}}-slim"
profiles = ["caches", "docs"]
"""


class Stack:
    """``slim serve --workers 0`` plus a registry that notifies it; workers on demand."""

    def __init__(self, tmp: Path, queue_args: list[str], queue: QueueConfig,
                 config: str = CONFIG, serve_args: tuple[str, ...] = ("--workers", "0"),
                 env: dict[str, str] | None = None, users: dict[str, str] | None = None,
                 **values: Any) -> None:
        self.tmp = tmp
        self.queue_args = queue_args
        self.port = free_port()
        self.registry = NotifyingRegistry(tmp / "registry", port=free_port(),
                                          auth="htpasswd" if users else "none",
                                          users=dict(users or {}),
                                          notify_url=f"http://127.0.0.1:{self.port}"
                                                     "/notifications",
                                          notify_token=TOKEN)
        self.config = tmp / "hook.toml"
        self.config.write_text(config.format(port=self.port, registry=self.registry.host,
                                             **values))
        self.env = {**os.environ, "SLIM_HOOK_TOKEN": TOKEN, **(env or {})}
        self.env.pop(TEST_SLEEP_ENV, None)
        self.serve_log = open(tmp / "serve.log", "wb")
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "slimmer.cli", "serve", "--config", str(self.config),
             *serve_args, "--log-format", "json", *queue_args],
            env=self.env, stdout=self.serve_log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        wait_for(self._healthy, 20, "slim serve to answer /healthz")
        self.registry.start()
        self.store: JobStore = open_store(queue)
        self.workers: list[subprocess.Popen[bytes]] = []

    def _healthy(self) -> bool:
        if self.serve.poll() is not None:
            raise AssertionError("slim serve exited: " + (self.tmp / "serve.log").read_text())
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def worker(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimmer.cli", "worker", "--config", str(self.config),
             "--log-format", "json", *self.queue_args],
            env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.workers.append(proc)
        return proc

    def log_records(self, name: str) -> list[dict[str, Any]]:
        records = []
        for line in (self.tmp / f"{name}.log").read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:       # not a log record, or a line still being written
                pass
        return [r for r in records if isinstance(r, dict)]

    def push(self, ref: str, creds: str | None = None) -> None:
        extra = ["--dest-creds", creds] if creds else []
        skopeo("copy", "--dest-tls-verify=false", *extra, EXAMPLE,
               f"docker://{self.registry.host}/{ref}")

    def job_for(self, repository: str, tag: str, state: str | None = None) -> Job | None:
        for job in self.store.recent(100):
            if job.repository == repository and job.tag == tag and \
                    (state is None or job.state == state):
                return job
        return None

    def has_tag(self, repository: str, tag: str) -> bool:
        users = self.registry.users
        auth = next(iter(users.items())) if users else None
        r = httpx.head(f"http://{self.registry.host}/v2/{repository}/manifests/{tag}",
                       headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                       auth=auth)
        return r.status_code == 200

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    def stop(self) -> None:
        for proc in [*self.workers, self.serve]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.serve]:
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.registry.stop()
        self.store.close()
        self.http.close()
        self.serve_log.close()


