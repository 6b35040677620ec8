"""``slim serve``'s HTTP side: it authenticates a notification, parses it, hands it to the
intake (``hook.intake``: served registries, rules, dedupe, queue) and answers 202 at once; the
slimming happens in workers. Also ``GET /healthz`` and ``GET /metrics``; HTTPS when a
certificate and key are configured.

The HTTP layer is the standard library's ThreadingHTTPServer, made safe for this one job:
a socket timeout and an overall deadline per request, a body cap checked against
Content-Length before reading, and a cap on concurrent connections (extra ones get 503).
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slimmer.errors import SlimmerError, UsageError
from slimmer.hook.config import ServerConfig
from slimmer.hook.events import EventError, parse_notification
from slimmer.hook.intake import Hook, QueueFull

log = logging.getLogger("slimmer.hook.server")

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
        self._tls = _tls_context(config)
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
            if self._tls is not None:
                # The handshake runs here, in the connection's thread, under the request
                # timeout: a slow or broken client never holds up the accept loop.
                request.settimeout(self.config.request_timeout)
                try:
                    request = self._tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    log.info("TLS handshake with %s failed: %s", client_address[0], exc)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"{'https' if self._tls else 'http'}://{name}:{port}"


def _tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server-side TLS context of ``--tls-cert``/``--tls-key`` (None: plain HTTP)."""
    if not config.tls_cert or not config.tls_key:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--tls-cert {config.tls_cert} / --tls-key {config.tls_key}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from exc
    return ctx


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

    def _send(self, status: int, body: Any, content_type: str = "application/json",
              retry_after: int | None = None) -> None:
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
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
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
        except QueueFull as exc:
            log.warning("refused notification (503, the sender retries): %s", exc,
                        extra={"error": str(exc)})
            self._send(503, {"error": str(exc)}, retry_after=5)
            return
        except SlimmerError as exc:
            log.error("could not queue notification: %s", exc, extra={"error": str(exc)})
            self._send(503, {"error": f"queue unavailable: {exc}"}, retry_after=5)
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
