"""The webhook front over real HTTP (ThreadingHTTPServer on a free port): auth, size and
format limits, dedupe of repeated deliveries, loop prevention, health and metrics."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from slimmer.errors import SlimmerError, UsageError
from slimmer.hook.config import ServerConfig
from slimmer.hook.events import DISTRIBUTION_V1
from slimmer.hook.identity import user_agent
from slimmer.hook.intake import Hook
from slimmer.hook.rules import Rule
from slimmer.hook.served import Served
from slimmer.hook.server import HookServer, serve_in_thread
from slimmer.hook.store.model import QUEUED
from slimmer.hook.store.sqlite import SqliteJobStore

TOKEN = "hook-test-token"
DIGEST = "sha256:" + "ab" * 32
V1 = {"Content-Type": DISTRIBUTION_V1}
AUTH = {"Authorization": f"Bearer {TOKEN}", **V1}


class Front:
    def __init__(self, tmp: Path, max_queued: int | None = None,
                 served: Served = Served(("localhost:5000",), "127.0.0.1:5000"),
                 **server: Any) -> None:
        self.store = SqliteJobStore(str(tmp / "hook.db"))
        self.queued: list[str] = []
        self.hook = Hook([Rule("team/*", "{repo}:{tag}-slim")], self.store, self.queued.append,
                         served, pending=lambda: len(self.queued),
                         max_queued=max_queued)
        cfg = ServerConfig(**{"listen": "127.0.0.1:0", "token": TOKEN, "max_body": 4096,
                              **server})
        self.server = HookServer(cfg, self.hook)
        serve_in_thread(self.server)
        self.client = httpx.Client(base_url=self.server.url, timeout=5)

    def post(self, body: Any, headers: dict[str, str] | None = None, path: str = "/notifications"
             ) -> httpx.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(path, content=data, headers=AUTH if headers is None else headers)

    def close(self) -> None:
        self.client.close()
        self.server.shutdown()
        self.server.server_close()
        self.store.close()


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    f = Front(tmp_path)
    yield f
    f.close()


def push(repo: str = "team/app", tag: str = "1.4", digest: str = DIGEST,
         agent: str = "docker/27.3.1 go/go1.22.7") -> dict[str, Any]:
    return {"events": [{
        "id": "e1", "timestamp": "2026-11-24T15:14:03Z", "action": "push",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "size": 1042, "digest": digest, "length": 1042, "repository": repo,
                   "url": f"http://localhost:5000/v2/{repo}/manifests/{digest}", "tag": tag},
        "request": {"id": "r1", "addr": "10.0.0.9:40000", "host": "localhost:5000",
                    "method": "PUT", "useragent": agent},
        "actor": {}, "source": {"addr": "registry:5000", "instanceID": "i1"}}]}


def test_push_is_queued_once_even_when_delivered_twice(front: Front) -> None:
    first = front.post(push())
    assert first.status_code == 202
    body = first.json()
    assert [q["destination"] for q in body["queued"]] == ["127.0.0.1:5000/team/app:1.4-slim"]
    job_id = body["queued"][0]["job"]
    second = front.post(push())
    assert second.status_code == 202
    assert second.json()["queued"] == [] and second.json()["duplicates"][0]["job"] == job_id
    assert front.queued == [job_id]
    job = front.store.get(job_id)
    assert job is not None and job.state == QUEUED
    assert job.source == f"127.0.0.1:5000/team/app@{DIGEST}"    # pinned to the pushed digest
    assert job.destination == "127.0.0.1:5000/team/app:1.4-slim"
    assert job.options["profiles"] == [] and job.options["compression"] == "zstd"


def test_same_digest_under_a_new_tag_is_a_new_job(front: Front) -> None:
    front.post(push(tag="1.4"))
    front.post(push(tag="latest"))
    assert len(front.queued) == 2


def test_loop_prevention(front: Front) -> None:
    own_agent = front.post(push(tag="9.9", agent=user_agent()))
    produced = front.post(push(tag="1.4-slim"))
    no_rule = front.post(push(repo="other/app"))
    assert [r.status_code for r in (own_agent, produced, no_rule)] == [202, 202, 202]
    assert front.queued == []
    assert "User-Agent" in own_agent.json()["ignored"][0]["reason"]
    assert produced.json()["ignored"][0]["reason"].startswith("produced by rule")
    assert no_rule.json()["ignored"][0]["reason"] == "no rule matches"


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {TOKEN}"},
    {"X-Other": TOKEN},
])
def test_missing_or_wrong_credentials_get_401_and_queue_nothing(front: Front,
                                                                headers: dict[str, str]) -> None:
    r = front.post(push(), {**V1, **headers})
    assert r.status_code == 401
    assert front.queued == [] and front.store.recent() == []


def test_bare_token_and_custom_header(tmp_path: Path) -> None:
    f = Front(tmp_path, auth_header="X-Slimmer-Token")
    try:
        assert f.post(push(), {**V1, "X-Slimmer-Token": TOKEN}).status_code == 202
        assert f.post(push(), {**V1, "Authorization": f"Bearer {TOKEN}"}).status_code == 401
    finally:
        f.close()


def test_body_limits_and_bad_bodies(front: Front) -> None:
    big = b'{"events": [' + b" " * 5000 + b"]}"
    r = front.post(big)
    assert r.status_code == 413 and "exceeds" in r.json()["error"]
    r = front.post(b"{nope")
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = front.post(b'{"hello": 1}')
    assert r.status_code == 400 and "envelope" in r.json()["error"]
    r = front.post(push(), {**AUTH, "Content-Type": "text/html"})
    assert r.status_code == 415
    assert front.queued == []


def test_chunked_bodies_are_refused(front: Front) -> None:
    def chunks() -> Iterator[bytes]:
        yield json.dumps(push()).encode()
    r = front.client.post("/notifications", content=chunks(), headers=AUTH)
    assert r.status_code == 411


def test_oversized_declared_length_is_refused_before_reading(front: Front) -> None:
    host, port = front.server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=5) as s:
        s.sendall(b"POST /notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + TOKEN.encode() + b"\r\nContent-Length: 999999999\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.0 413")


def test_paths_and_methods(front: Front) -> None:
    assert front.post(push(), path="/other").status_code == 404
    assert front.client.get("/notifications").status_code == 405
    assert front.client.put("/notifications", content=b"{}").status_code == 405


def test_healthz_and_metrics(front: Front) -> None:
    assert front.client.get("/healthz").json() == {"status": "ok"}
    front.post(push())
    front.post(push())
    front.post(push(tag="1.4-slim"))
    front.post(push(), {})
    text = front.client.get("/metrics").text
    assert "slimmer_hook_events_received_total 3" in text
    assert 'slimmer_hook_events_total{outcome="queued"} 1' in text
    assert 'slimmer_hook_events_total{outcome="duplicate"} 1' in text
    assert 'slimmer_hook_events_total{outcome="own"} 1' in text
    assert 'slimmer_hook_http_requests_total{code="401"} 1' in text
    assert 'slimmer_hook_jobs{state="queued"} 1' in text
    assert "slimmer_hook_bytes_saved_total 0" in text
    assert "slimmer_hook_queue_messages 1" in text
    assert "# TYPE slimmer_hook_jobs gauge" in text


def test_store_failure_answers_503_so_the_registry_retries(front: Front) -> None:
    def broken(job_id: str) -> None:
        raise SlimmerError("queue down")
    front.hook.enqueue = broken
    assert front.post(push()).status_code == 503


def test_no_token_refuses_to_start(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "hook.db"))
    hook = Hook([Rule("team/*", "{repo}:{tag}-slim")], store, lambda j: None,
                Served(("127.0.0.1:5000",)))
    with pytest.raises(SlimmerError, match="no webhook token"):
        HookServer(ServerConfig(listen="127.0.0.1:0"), hook)
    store.close()


def test_harbor_webhook(tmp_path: Path) -> None:
    front = Front(tmp_path, served=Served(("harbor.example.com",), "127.0.0.1:5000"))
    body = {"type": "PUSH_ARTIFACT", "occur_at": 1764000000, "operator": "ci",
            "event_data": {"resources": [{"digest": DIGEST, "tag": "2.0",
                                          "resource_url": "harbor.example.com/team/web:2.0"}],
                           "repository": {"name": "web", "namespace": "team",
                                          "repo_full_name": "team/web", "repo_type": "private"}}}
    try:
        r = front.post(body, {"Authorization": TOKEN, "Content-Type": "application/json"})
        assert r.status_code == 202
        assert r.json()["queued"][0]["destination"] == "127.0.0.1:5000/team/web:2.0-slim"
    finally:
        front.close()


def test_past_max_queued_the_front_answers_503_until_jobs_drain(tmp_path: Path) -> None:
    front = Front(tmp_path, max_queued=2)
    try:
        for tag in ("1", "2"):
            assert front.post(push(tag=tag)).status_code == 202
        busy = front.post(push(tag="3"))
        assert busy.status_code == 503 and busy.headers["Retry-After"]
        assert "2 jobs are waiting" in busy.json()["error"]
        assert len(front.store.recent(10)) == 2            # nothing recorded for tag 3
        # an envelope without pushes is still taken (nothing to queue)
        assert front.post({"events": []}).status_code == 202
        job = front.store.claim(front.queued[0], "w", 30, 5).job
        assert job is not None
        front.store.finish(job.id, "w", "done")
        assert front.post(push(tag="3")).status_code == 202
        assert "slimmer_hook_busy_total 1" in front.client.get("/metrics").text
    finally:
        front.close()


def test_https_front(tmp_path: Path) -> None:
    from support.registry_server import make_pki
    pki = make_pki(tmp_path / "pki")
    front = Front(tmp_path, tls_cert=str(pki.cert_file), tls_key=str(pki.key_file))
    try:
        assert front.server.url.startswith("https://")
        ca = ssl.create_default_context(cafile=str(pki.ca_file))
        secure = httpx.Client(base_url=front.server.url, verify=ca, timeout=5)
        r = secure.post("/notifications", content=json.dumps(push()).encode(), headers=AUTH)
        assert r.status_code == 202 and len(r.json()["queued"]) == 1
        secure.close()
        plain = front.server.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.post(plain + "/notifications", content=b"{}", headers=AUTH, timeout=5)
        # the front still answers after a failed handshake
        assert httpx.get(front.server.url + "/healthz", verify=ca).status_code == 200
    finally:
        front.close()


def test_tls_needs_both_files() -> None:
    with pytest.raises(UsageError, match="both --tls-cert and --tls-key"):
        ServerConfig(tls_cert="cert.pem")
