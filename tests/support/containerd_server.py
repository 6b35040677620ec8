"""A private containerd for tests (Debian's ``containerd``, as root): its own root, state and
socket under a test directory, stopped by its PID and its mounts checked at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
CONFIG = 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'


def missing() -> str | None:
    """Why containerd tests cannot run here, or None."""
    if CONTAINERD is None or CTR is None:
        return "containerd is not installed (scripts/setup --test)"
    if os.geteuid() != 0:
        return "containerd needs root"
    return None


@dataclass
class Containerd:
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "containerd.sock"

    def start(self) -> "Containerd":
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.toml"
        config.write_text(CONFIG)
        log = open(self.directory / "containerd.log", "ab")
        self.process = subprocess.Popen(
            [str(CONTAINERD), "--config", str(config), "--root", str(self.directory / "root"),
             "--state", str(self.directory / "state"), "--address", str(self.socket)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while self.ctr("version", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("containerd did not start: " +
                                   (self.directory / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)
        return self

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CTR), "--address", str(self.socket), *args], check=check,
                              capture_output=True, text=True, timeout=120)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        mounts = Path("/proc/self/mounts").read_text()
        for line in mounts.splitlines():        # unmount what it left mounted under us
            target = line.split()[1]
            if target.startswith(str(self.directory)):
                subprocess.run(["umount", "-l", target], check=False)


def run_containerd(directory: Path) -> Iterator[Containerd]:
    """Generator for fixtures: a started containerd, stopped afterwards."""
    server = Containerd(directory).start()
    try:
        yield server
    finally:
        server.stop()
