"""``slim serve``: the webhook front. It authenticates a notification, parses it, decides per
push event (rules, loop prevention, dedupe), records and queues jobs, and answers 202 at once;
the slimming happens in workers. Also ``GET /healthz`` and ``GET /metrics``.

The HTTP layer is the standard library's ThreadingHTTPServer, made safe for this one job:
a socket timeout and an overall deadline per request, a body cap checked against
Content-Length before reading, and a cap on concurrent connections (extra ones get 503).
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

from slimmer.errors import SlimmerError
from slimmer.hook.config import ServerConfig
from slimmer.hook.events import EventError, Parsed, PushEvent, parse_notification
from slimmer.hook.identity import USER_AGENT_PREFIX
from slimmer.hook.rules import Rule, Verdict, decide, job_id, job_options
from slimmer.hook.store.model import STATES, JobSpec, JobStore

log = logging.getLogger("slimmer.hook.server")

#: Outcomes of one push event, as counted in ``slimmer_hook_events_total``.
OUTCOMES = ("queued", "duplicate", "ignored", "own")


@dataclass
class FrontMetrics:
    """Counters of this front process (job counts come from the shared store)."""

    events_received: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    requests: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, status: int) -> None:
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1

    def event(self, outcome: str) -> None:
        with self.lock:
            self.events_received += 1
            self.outcomes[outcome] += 1


class Hook:
    """Turns parsed notifications into jobs: what the server does once a body is accepted."""

    def __init__(self, rules: Sequence[Rule], store: JobStore,
                 enqueue: Callable[[str], None], registry_address: str | None = None,
                 pending: Callable[[], int] | None = None) -> None:
        self.rules = tuple(rules)
        self.store = store
        self.enqueue = enqueue
        self.registry_address = registry_address
        self.pending = pending
        self.metrics = FrontMetrics()

    def process(self, parsed: Parsed) -> dict[str, Any]:
        """Queue a job for every push a rule matches; the summary goes back to the sender."""
        summary: dict[str, Any] = {"queued": [], "duplicates": [], "ignored": []}
        for reason in parsed.skipped:
            self.metrics.event("ignored")
            summary["ignored"].append({"reason": reason})
        for push in parsed.pushes:
            outcome, detail = self._one(push)
            self.metrics.event(outcome)
            if outcome == "queued":
                summary["queued"].append(detail)
            elif outcome == "duplicate":
                summary["duplicates"].append(detail)
            else:
                summary["ignored"].append(detail)
        return summary

    def _one(self, push: PushEvent) -> tuple[str, dict[str, Any]]:
        what = {"repository": push.repository, "tag": push.tag, "digest": push.digest}
        if push.user_agent and push.user_agent.startswith(USER_AGENT_PREFIX):
            log.info("ignored own push %s:%s (User-Agent)", push.repository, push.tag,
                     extra=what)
            return "own", {**what, "reason": "pushed by slimmer-hook (User-Agent)"}
        registry = self.registry_address or push.registry
        if not registry:
            return "ignored", {**what, "reason": "the event names no registry; set "
                                                 "[registry] address"}
        aliases = [push.registry] if push.registry and push.registry != registry else []
        decision = decide(self.rules, registry, push.repository, push.tag, push.digest,
                          aliases)
        if decision.rule is None or decision.destination is None:
            log.info("ignored push %s:%s: %s", push.repository, push.tag, decision.reason,
                     extra={**what, "reason": decision.reason})
            return ("own" if decision.verdict == Verdict.PRODUCED else "ignored",
                    {**what, "reason": decision.reason})
        source = f"{registry}/{push.repository}@{push.digest}"
        jid = job_id(source, decision.destination)
        spec = JobSpec(jid, source, decision.destination, registry, push.repository, push.tag,
                       push.digest, decision.rule.name, job_options(decision.rule))
        detail = {**what, "job": jid, "destination": decision.destination}
        if not self.store.create(spec):
            log.info("duplicate push %s:%s (job %s exists)", push.repository, push.tag, jid,
                     extra=detail)
            return "duplicate", detail
        self.enqueue(jid)
        log.info("queued job %s: %s -> %s", jid, source, decision.destination,
                 extra={**detail, "rule": decision.rule.name})
        return "queued", detail

    # -- metrics ------------------------------------------------------------------------------

    def render_metrics(self) -> str:
        """Prometheus text format (version 0.0.4)."""
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str,
                   samples: Sequence[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {value:g}" if isinstance(value, float)
                           else f"{name}{labels} {value}")

        m = self.metrics
        with m.lock:
            received = m.events_received
            outcomes = dict(m.outcomes)
            requests = dict(m.requests)
        metric("slimmer_hook_events_received_total", "counter",
               "Registry events received by this front.", [("", received)])
        metric("slimmer_hook_events_total", "counter",
               "Events by outcome: queued, duplicate, ignored (no rule, not a tagged manifest "
               "push), own (produced by the hook).",
               [(f'{{outcome="{o}"}}', n) for o, n in outcomes.items()])
        metric("slimmer_hook_http_requests_total", "counter",
               "Webhook requests by HTTP status.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(requests.items())])
        try:
            counts = self.store.counts()
            totals = self.store.totals()
            pending = self.pending() if self.pending else None
            up = 1
        except Exception as exc:  # the store is down: say so, keep serving
            log.error("metrics: job store unavailable: %s", exc)
            counts, totals, pending, up = {}, {}, None, 0
        metric("slimmer_hook_store_up", "gauge", "Whether the job store answered.",
               [("", up)])
        if counts:
            metric("slimmer_hook_jobs", "gauge", "Jobs in the store by state.",
                   [(f'{{state="{s}"}}', counts.get(s, 0)) for s in STATES])
        if totals:
            metric("slimmer_hook_jobs_finished_total", "counter",
                   "Jobs that reached a final state (all workers).",
                   [(f'{{state="{s}"}}', totals.get(s, 0)) for s in ("done", "failed",
                                                                     "skipped")])
            metric("slimmer_hook_job_retries_total", "counter",
                   "Attempts that failed with a transient error and were retried.",
                   [("", totals.get("retries", 0))])
            metric("slimmer_hook_jobs_lost_total", "counter",
                   "Attempts whose worker vanished (lease expired).",
                   [("", totals.get("lost", 0))])
            metric("slimmer_hook_bytes_saved_total", "counter",
                   "Compressed bytes saved by finished jobs (source minus result size).",
                   [("", totals.get("bytes_saved", 0))])
        if pending is not None:
            metric("slimmer_hook_queue_messages", "gauge",
                   "Messages waiting in the huey queue.", [("", pending)])
        return "\n".join(out) + "\n"


class HookServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on concurrent connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, config: ServerConfig, hook: Hook) -> None:
        self.config = config
        self.hook = hook
        self._slots = threading.BoundedSemaphore(config.max_connections)
        if config.token is None and not config.allow_unauthenticated:
            raise SlimmerError("no webhook token: set [server] token_file, SLIM_HOOK_TOKEN "
                               "or --token-file (or --no-auth on a trusted network)")
        super().__init__(config.address, _handler_class(config))

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.hook.metrics.request(503)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"


class _BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _handler_class(config: ServerConfig) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        timeout = config.request_timeout
    return Handler


class _Handler(BaseHTTPRequestHandler):
    server: HookServer
    server_version = "slimmer-hook"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, bytes) else
                (json.dumps(body) + "\n").encode() if content_type == "application/json"
                else str(body).encode())
        self.server.hook.metrics.request(status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="slimmer-hook"')
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            try:
                self.server.hook.store.ping()
            except SlimmerError as exc:
                self._send(503, {"status": "unavailable", "error": str(exc)})
                return
            self._send(200, {"status": "ok"})
        elif path == "/metrics":
            self._send(200, self.server.hook.render_metrics(),
                       "text/plain; version=0.0.4; charset=utf-8")
        elif path == self.server.config.path:
            self._send(405, {"error": "use POST"})
        else:
            self._send(404, {"error": "not found"})

    def do_PUT(self) -> None:
        self._send(405, {"error": "method not allowed"})

    do_DELETE = do_PATCH = do_PUT

    def do_POST(self) -> None:
        config = self.server.config
        if self.path.split("?", 1)[0] != config.path:
            self._send(404, {"error": "not found"})
            return
        if not self._authorized():
            log.warning("rejected notification from %s: bad or missing credentials",
                        self.client_address[0], extra={"client": self.client_address[0]})
            self._send(401, {"error": "missing or wrong credentials"})
            return
        try:
            body = self._read_body(config)
        except _BodyError as exc:
            self._send(exc.status, {"error": str(exc)})
            return
        try:
            parsed = parse_notification(body, self.headers.get("Content-Type"))
        except EventError as exc:
            status = 415 if "content type" in str(exc) else 400
            log.warning("rejected notification: %s", exc, extra={"error": str(exc)})
            self._send(status, {"error": str(exc)})
            return
        try:
            summary = self.server.hook.process(parsed)
        except SlimmerError as exc:
            log.error("could not queue notification: %s", exc, extra={"error": str(exc)})
            self._send(503, {"error": f"queue unavailable: {exc}"})
            return
        self._send(202, summary)

    def _authorized(self) -> bool:
        config = self.server.config
        if config.token is None:
            return config.allow_unauthenticated
        got = (self.headers.get(config.auth_header) or "").strip().encode()
        token = config.token.encode()
        # Compare with both forms every time (no early exit on the first).
        plain = hmac.compare_digest(got, token)
        bearer = hmac.compare_digest(got, b"Bearer " + token)
        return plain or bearer

    def _read_body(self, config: ServerConfig) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _BodyError(411, "chunked bodies are not accepted; send Content-Length")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise _BodyError(411, "Content-Length required")
        try:
            length = int(length_text)
        except ValueError:
            raise _BodyError(400, f"bad Content-Length {length_text!r}") from None
        if length < 0:
            raise _BodyError(400, f"bad Content-Length {length_text!r}")
        if length > config.max_body:
            raise _BodyError(413, f"body of {length} bytes exceeds the limit of "
                                  f"{config.max_body} bytes")
        deadline = time.monotonic() + 3 * config.request_timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining:
                if time.monotonic() > deadline:
                    raise _BodyError(408, "request body took too long")
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    raise _BodyError(400, "body shorter than Content-Length")
                chunks.append(chunk)
                remaining -= len(chunk)
        except (socket.timeout, TimeoutError):
            raise _BodyError(408, "timed out reading the request body") from None
        return b"".join(chunks)


def serve_in_thread(server: HookServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, and ``slim serve`` with embedded workers)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="slimmer-hook-http", daemon=True)
    thread.start()
    return thread
