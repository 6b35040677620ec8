"""Processes and mounts a measurement starts, and how they are ended: every child in its own
session (a Ctrl-C on the terminal reaches only slimmer, which then stops them in order), stopped
by its PID; mounts found in /proc/self/mountinfo under a directory this run created."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from typing import IO, Iterator, Self, Sequence

from slimmer.coldstart.model import TAIL_LINES

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Inside (main thread only): Ctrl-C and SIGTERM wait until the block is done, then raise
    KeyboardInterrupt, so a second Ctrl-C cannot cut a clean-up short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def note(signum: int, _frame: object) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise KeyboardInterrupt


class Resource:
    """A context manager for what a measurement starts: ``_start`` may stop half-way, so
    ``close`` (run on exit, and when ``_start`` fails) ends whatever exists, with Ctrl-C and
    SIGTERM deferred until it is done. Subclasses write ``_start`` and ``_close``."""

    def _start(self) -> None:
        """Start what the resource holds."""

    def _close(self) -> None:
        """End whatever was started; must cope with a partial start and a second call."""

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with deferred_interrupts():
            self._close()


def spawn(argv: Sequence[str], *, output: int | IO[bytes] | None = subprocess.PIPE,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdin from /dev/null, stderr merged into stdout."""
    return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=output,
                            stderr=subprocess.STDOUT, start_new_session=True, env=env)


def stop(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM the process, SIGKILL it after ``grace`` seconds, and reap it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        kill(proc)
    except ProcessLookupError:
        proc.wait()


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process (by its PID) and reap it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


class Exit:
    """Waits for a child in a thread and notes when it exited (``time.monotonic``): precise,
    where ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.at: float | None = None
        self.code: int | None = None
        self._done = threading.Event()
        threading.Thread(target=self._wait, name="slimmer-exit", daemon=True).start()

    def _wait(self) -> None:
        code = self.proc.wait()
        self.at = time.monotonic()
        self.code = code
        self._done.set()

    def wait(self, timeout: float) -> bool:
        """True once the child has exited, False if ``timeout`` seconds passed first."""
        return self._done.wait(max(timeout, 0.0))


class Output:
    """Reads a child's output in a thread: keeps the last lines, timestamps the first line
    that contains ``marker`` (``time.monotonic``), and the first that matches ``pattern``."""

    def __init__(self, stream: IO[bytes], marker: bytes | None = None,
                 pattern: re.Pattern[str] | None = None) -> None:
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.marker_at: float | None = None
        self.matched_at: float | None = None
        self.matched = threading.Event()
        self._marker = marker
        self._pattern = pattern
        self._stream = stream
        self._thread = threading.Thread(target=self._read, name="slimmer-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in iter(self._stream.readline, b""):
            now = time.monotonic()
            if self._marker is not None and self.marker_at is None and self._marker in raw:
                self.marker_at = now
            # progress displays redraw with escape sequences and carriage returns
            text = _ANSI.sub("", raw.decode("utf-8", "replace").rstrip("\r\n"))
            text = text.split("\r")[-1]
            if self._pattern is not None and self.matched_at is None \
                    and self._pattern.search(text):
                self.matched_at = now
                self.matched.set()
            if text.strip():
                self.tail.append(text[:500])
        self._stream.close()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def lines(self) -> list[str]:
        return list(self.tail)


# -- mounts ------------------------------------------------------------------------------------

def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal ``\\040`` and so on."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and i + 4 <= len(field):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        parts, rest = left.split(), right.split()
        if len(parts) >= 5 and rest:
            out.append((_unescape(parts[4]), rest[0]))
    return out


def mounts_under(directory: str) -> list[str]:
    """Mount points at or below ``directory``, deepest first."""
    base = os.path.realpath(directory)
    found = {m for m, _ in mount_points() if m == base or m.startswith(base + "/")}
    return sorted(found, key=lambda m: (-m.count("/"), m))


def unmount(path: str) -> None:
    """Unmount ``path``; a busy mount is detached lazily so nothing stays visible."""
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def unmount_under(directory: str) -> None:
    for point in mounts_under(directory):
        unmount(point)


def mount_tmpfs(directory: str) -> None:
    """Mount a fresh tmpfs on ``directory`` (root only); OSError with mount's message."""
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "slimmer-coldstart",
                           directory], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip() or f"mount exited with status {proc.returncode}")


# -- leftovers ---------------------------------------------------------------------------------

def pids_mentioning(text: str) -> list[int]:
    """PIDs of processes whose command line contains ``text`` (a directory this run made, so
    they are processes it started, e.g. containerd's shims)."""
    needle = text.encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if needle in fh.read():
                    out.append(int(name))
        except OSError:
            continue
    return out


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def cgroup_dirs(name: str) -> list[str]:
    """The directories called ``name`` at the top of every cgroup hierarchy (v1 and v2)."""
    out = []
    for point, fstype in mount_points():
        if fstype in ("cgroup", "cgroup2"):
            path = os.path.join(point, name)
            if os.path.isdir(path):
                out.append(path)
    return out


def kill_cgroup(name: str) -> None:
    """SIGKILL every process in the cgroups under ``name`` (a namespace this run made up) and
    remove those cgroups, deepest first."""
    for top in cgroup_dirs(name):
        dirs = [d for d, _, _ in os.walk(top)]
        for directory in dirs:
            try:
                with open(os.path.join(directory, "cgroup.procs"), encoding="ascii") as fh:
                    kill_pids([int(p) for p in fh.read().split()])
            except (OSError, ValueError):
                continue
        for directory in sorted(dirs, key=lambda d: -d.count("/")):
            for _ in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

