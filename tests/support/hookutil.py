"""Test helpers for the registry hook: a real Redis server (Debian's redis-server) on a free
port with its files in a temp dir, a registry whose notifications go to a hook, and polling."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from support.registry_server import Registry, free_port

REDIS_SERVER = shutil.which("redis-server")
T = TypeVar("T")


def redis_missing() -> str | None:
    """Why the Redis tests cannot run here, or None."""
    if REDIS_SERVER is None:
        return "redis-server is not installed (scripts/setup --test)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "python package redis is missing (scripts/setup --test)"
    return None


@dataclass
class RedisServer:
    """``redis-server`` on 127.0.0.1, no persistence, stopped by ``stop``."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        import redis
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _ping(client), 10, "redis-server to start")
        client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def _ping(client: object) -> bool:
    import redis
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except redis.ConnectionError:
        return False


def run_redis(directory: Path) -> Iterator[RedisServer]:
    """Generator for fixtures: a started Redis, stopped afterwards."""
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(check: Callable[[], T | None], timeout: float, what: str,
             interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class NotifyingRegistry(Registry):
    """The test registry with a ``notifications`` endpoint pointing at a hook, configured as
    README "Registry hook" shows (bearer token header, short timeout and backoff)."""

    notify_url: str = ""
    notify_token: str = ""

    def _config(self) -> str:
        lines = ["notifications:", "  events:", "    includereferences: true",
                 "  endpoints:", "    - name: slimmer-hook", f"      url: {self.notify_url}",
                 "      headers:", "        Authorization:",
                 f"          - Bearer {self.notify_token}",
                 "      timeout: 2s", "      threshold: 3", "      backoff: 1s",
                 "      ignoredmediatypes:", "        - application/octet-stream",
                 "      ignore:", "        actions:", "          - pull"]
        return super()._config() + "\n".join(lines) + "\n"


class Trap:
    """A listener on 127.0.0.1 that records every connection and answers each request with
    401 and a Basic challenge, as a host an attacker names in an event would: whatever
    connects to it, and any Authorization header it was sent, shows in ``connections``."""

    def __init__(self) -> None:
        import socket
        import threading
        self.connections: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic "
                                 b"realm=\"trap\"\r\nContent-Length: 0\r\nConnection: close"
                                 b"\r\n\r\n")
                except OSError:
                    data = b""
                self.connections.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
