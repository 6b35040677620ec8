"""One cold run on containerd + runc: a private ``containerd`` with a fresh root, state dir and
socket (started and stopped by the run), ``ctr image pull`` from the private registry, then
``ctr run`` until the image is ready. Everything it started is ended by PID, every mount under
its directory unmounted and the directory removed, also on errors and Ctrl-C.

What is timed (containerd 1.6 ``ctr image pull`` fetches every blob into the content store,
then unpacks the layers into the snapshotter; the two do not overlap, and ctr prints
``unpacking PLATFORM DIGEST...`` between them; on containerd 2 ``--local`` keeps that order):
pull = from starting ``ctr image pull`` to that line; unpack = from that line to its exit;
start = from starting ``ctr run`` to ready (snapshot, runc create and start, the command)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from slimmer.coldstart import procs
from slimmer.coldstart.options import Readiness
from slimmer.errors import RuntimeUnavailableError, StartError
from slimmer.units import format_duration

_LATE = "not ready before the deadline"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: Where containerd's shims put their sockets, whatever containerd's own state dir is.
SHIM_SOCKET_DIR = "/run/containerd/s"
#: The short directory of a run's sockets (under /run, else /tmp).
SOCKETS_PREFIX = "slim-ctd-"
_DISABLED = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper",
             "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
             "io.containerd.snapshotter.v1.zfs"]


@dataclass(frozen=True)
class Tools:
    """The programs a containerd run needs, and containerd's version."""

    containerd: str
    ctr: str
    runc: str
    version: str

    @property
    def major(self) -> int:
        m = re.match(r"v?(\d+)", self.version)
        return int(m.group(1)) if m else 1


def find_tools() -> tuple[Tools | None, str | None]:
    """The tools, or None and why containerd cannot be used here."""
    if os.geteuid() != 0:
        return None, "not running as root (containerd needs root)"
    paths = {name: shutil.which(name) for name in ("containerd", "ctr", "runc")}
    for name, path in paths.items():
        if path is None:
            package = "runc" if name == "runc" else "containerd"
            return None, f"{name} is not installed (Debian package {package})"
    try:
        out = subprocess.run([paths["ctr"] or "ctr", "--version"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"ctr --version failed: {exc}"
    parts = out.split()
    version = parts[2].lstrip("v") if len(parts) >= 3 else "?"
    return Tools(paths["containerd"] or "", paths["ctr"] or "", paths["runc"] or "",
                 version), None


def require_tools() -> Tools:
    tools, why = find_tools()
    if tools is None:
        raise RuntimeUnavailableError(f"--runtime containerd: {why}")
    return tools


class ContainerdRun(procs.Resource):
    """One private containerd for one cold run; use as a context manager."""

    def __init__(self, tools: Tools, work_dir: str | None, namespace: str,
                 tmpfs: bool = False) -> None:
        self.tools = tools
        self.namespace = namespace
        self._work_dir = work_dir
        self._tmpfs = tmpfs
        self._mounted = False
        self.base = ""
        self.sockets = ""
        self.daemon: subprocess.Popen[bytes] | None = None
        self._running: subprocess.Popen[bytes] | None = None
        self._ids: list[str] = []

    @property
    def address(self) -> str:
        return os.path.join(self.sockets, "containerd.sock")

    def _ctr(self, *args: str) -> list[str]:
        return [self.tools.ctr, "--address", self.address, "--namespace", self.namespace,
                *args]

    # -- daemon --------------------------------------------------------------------------

    def _start(self) -> None:
        self.base = tempfile.mkdtemp(prefix="slim-containerd-", dir=self._work_dir)
        # unix socket paths are limited to 104 bytes: the sockets get a short directory
        self.sockets = tempfile.mkdtemp(prefix=SOCKETS_PREFIX, dir=_short_dir())
        if self._tmpfs:
            try:
                procs.mount_tmpfs(self.base)
            except OSError as exc:
                raise RuntimeUnavailableError(f"--tmpfs: cannot mount a tmpfs: {exc}") from exc
            self._mounted = True
        config = os.path.join(self.base, "config.toml")
        with open(config, "w", encoding="utf-8") as fh:
            fh.write(self._config())
        log = open(os.path.join(self.base, "containerd.log"), "ab")
        with log:
            self.daemon = procs.spawn([self.tools.containerd, "--config", config,
                                       "--log-level", "warn"], output=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                break
            if os.path.exists(self.address) and subprocess.run(
                    self._ctr("version"), capture_output=True, timeout=30).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeUnavailableError(f"containerd did not start: {self._daemon_log()}")

    def _config(self) -> str:
        q = '"{}"'.format
        return "\n".join([
            "version = 2", f"root = {q(os.path.join(self.base, 'root'))}",
            f"state = {q(os.path.join(self.base, 'state'))}",
            "disabled_plugins = [" + ", ".join(q(p) for p in _DISABLED) + "]",
            "[grpc]", f"  address = {q(self.address)}",
            "[ttrpc]", f"  address = {q(self.address + '.ttrpc')}",
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {q(os.path.join(self.base, 'opt'))}",
        ]) + "\n"

    def _daemon_log(self) -> str:
        try:
            with open(os.path.join(self.base, "containerd.log"), errors="replace") as fh:
                lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1][-300:] if lines else "no output"

    # -- pull ----------------------------------------------------------------------------

    def pull(self, ref: str, deadline: float, timeout: float) -> tuple[float, float]:
        """(pull, unpack) seconds of ``ctr image pull`` from the plain-HTTP private registry."""
        extra = ["--local"] if self.tools.major >= 2 else []
        argv = self._ctr("image", "pull", "--plain-http", *extra, ref)
        t0 = time.monotonic()
        proc = self._running = procs.spawn(argv)
        assert proc.stdout is not None
        out = procs.Output(proc.stdout, marker=b"unpacking ")
        exited = procs.Exit(proc)
        if not exited.wait(deadline - time.monotonic()):
            procs.kill(proc)
            out.join()
            raise StartError(f"not ready after {format_duration(timeout)} (still pulling)",
                             out.lines())
        out.join()
        self._running = None
        if exited.code != 0:
            raise StartError(f"ctr image pull exited with status {exited.code}", out.lines())
        if out.marker_at is None or exited.at is None:
            raise StartError("ctr image pull printed no 'unpacking' line: cannot tell the "
                             "pull from the unpack", out.lines())
        return out.marker_at - t0, exited.at - out.marker_at

    # -- run -----------------------------------------------------------------------------

    def run(self, ref: str, cid: str, argv: tuple[str, ...], readiness: Readiness,
            ready_log: str | None, ready_url: str | None, deadline: float,
            timeout: float) -> float:
        """Seconds from ``ctr run`` to ready; StartError (with the output's last lines) when
        the command fails, exits before it is ready, or is not ready before ``deadline``."""
        flags = ["--net-host"] if readiness == Readiness.URL else []
        self._ids.append(cid)
        t0 = time.monotonic()
        proc = self._running = procs.spawn(self._ctr("run", *flags, ref, cid, *argv))
        assert proc.stdout is not None
        pattern = re.compile(ready_log) if ready_log is not None else None
        out = procs.Output(proc.stdout, pattern=pattern)
        try:
            return self._wait(proc, out, readiness, ready_url, deadline, t0)
        except StartError as exc:
            message = f"not ready after {format_duration(timeout)}" \
                if exc.args[0] == _LATE else str(exc)
            failed = StartError(message)
        finally:
            self._end(proc, cid)
            out.join()
        failed.output = out.lines()
        raise failed

    def _wait(self, proc: subprocess.Popen[bytes], out: procs.Output, readiness: Readiness,
              url: str | None, deadline: float, t0: float) -> float:
        exited = procs.Exit(proc)
        while True:
            if out.matched_at is not None:
                return out.matched_at - t0
            left = deadline - time.monotonic()
            if readiness == Readiness.EXIT:
                if not exited.wait(left):
                    raise StartError(_LATE)
                out.join()
                if exited.code == 0 and exited.at is not None:
                    return exited.at - t0
                raise StartError(f"exited with status {exited.code}")
            if exited.wait(0):
                out.join()
                if out.matched_at is not None:
                    return out.matched_at - t0
                raise StartError(f"exited with status {exited.code} before it was ready")
            if left <= 0:
                raise StartError(_LATE)
            if readiness == Readiness.URL and url is not None:
                if _answers(url, min(1.0, left)):
                    return time.monotonic() - t0
                time.sleep(0.02)
            else:
                out.matched.wait(min(0.02, max(left, 0.0)))

    def _end(self, proc: subprocess.Popen[bytes], cid: str) -> None:
        """Stop the task (SIGKILL through containerd) and the ``ctr run`` client."""
        if proc.poll() is None:
            subprocess.run(self._ctr("task", "kill", "--signal", "SIGKILL", cid),
                           capture_output=True, timeout=30)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                procs.kill(proc)
        self._running = None

    # -- cleanup -------------------------------------------------------------------------

    def _close(self) -> None:
        """End everything this run started and remove its directory; safe to call twice."""
        if not self.base:
            return
        procs.kill(self._running)
        if self.daemon is not None and self.daemon.poll() is None:
            for cid in self._ids:
                for args in (("task", "kill", "--signal", "SIGKILL", cid),
                             ("task", "delete", "--force", cid), ("container", "delete", cid)):
                    try:
                        subprocess.run(self._ctr(*args), capture_output=True, timeout=30)
                    except (OSError, subprocess.SubprocessError):
                        break
        procs.stop(self.daemon)
        self.daemon = None
        # Safety net: shims (their command line names our socket), container processes (in
        # cgroups under our namespace), their sockets, then every mount under our directory.
        procs.kill_pids(procs.pids_mentioning(self.base) + procs.pids_mentioning(self.sockets))
        procs.kill_cgroup(self.namespace)
        for cid in self._ids:
            name = hashlib.sha256(os.path.join(self.address, self.namespace, cid).encode())
            try:
                os.unlink(os.path.join(SHIM_SOCKET_DIR, name.hexdigest()))
            except OSError:
                pass
        procs.unmount_under(self.base)
        self._mounted = False
        shutil.rmtree(self.base, ignore_errors=True)
        if os.path.exists(self.base):
            procs.unmount_under(self.base)
            shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.sockets, ignore_errors=True)
        if not self._tmpfs:
            os.sync()  # writeback of the removed tree must not land in the next run
        self.base = self.sockets = ""


def _short_dir() -> str:
    for directory in ("/run", "/tmp"):
        if os.path.isdir(directory) and os.access(directory, os.W_OK):
            return directory
    return tempfile.gettempdir()


def _answers(url: str, timeout: float) -> bool:
    """True if ``url`` answers with a status from 200 to 399."""
    try:
        with _NO_PROXY.open(url, timeout=max(timeout, 0.05)) as resp:
            return 200 <= resp.status < 400
    except urllib.error.HTTPError as exc:
        return 200 <= exc.code < 400
    except (OSError, ValueError):
        return False
