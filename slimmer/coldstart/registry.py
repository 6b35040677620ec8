"""A private registry for one measurement: the CNCF distribution registry (Debian's
``docker-registry``) on 127.0.0.1, plain HTTP, no auth, storage in a directory of its own.
Every image is copied into it once (untimed) so every run pulls the same way over loopback."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

from slimmer.coldstart import procs
from slimmer.errors import RuntimeUnavailableError
from slimmer.oci.image import Image
from slimmer.oci.refs import RegistryRef

REGISTRY_BINARY = "docker-registry"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRegistry:
    """``docker-registry serve`` with its config and storage under ``directory`` (which the
    caller removes); ``start`` waits until it answers, ``stop`` ends it by its PID."""

    def __init__(self, directory: str, binary: str | None = None) -> None:
        self.directory = directory
        self.binary = binary or shutil.which(REGISTRY_BINARY)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = os.path.join(directory, "registry.log")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> str:
        storage = os.path.join(self.directory, "storage")
        return "\n".join([
            "version: 0.1", "log:", "  level: warn", "  accesslog:", "    disabled: true",
            "storage:", "  filesystem:", f"    rootdirectory: {storage!r}",
            "  maintenance:", "    uploadpurging:", "      enabled: false",
            "http:", f"  addr: 127.0.0.1:{self.port}", f"  secret: {secrets.token_hex(16)}",
        ]) + "\n"

    def start(self) -> "PrivateRegistry":
        if self.binary is None:
            raise RuntimeUnavailableError(f"{REGISTRY_BINARY} is not installed (Debian package "
                                          f"docker-registry)")
        os.makedirs(self.directory, exist_ok=True)
        for _attempt in range(3):  # the free port may be taken before the registry binds it
            self.port = _free_port()
            config = os.path.join(self.directory, "config.yml")
            with open(config, "w", encoding="utf-8") as fh:
                fh.write(self._config())
            with open(self.log, "ab") as log:
                self.process = procs.spawn([self.binary, "serve", config], output=log)
            if self._wait_ready(15.0):
                return self
            self.stop()
            if "address already in use" not in self._log_text():
                break
        raise RuntimeUnavailableError(f"{REGISTRY_BINARY} did not start: "
                                      f"{self._log_text()[-300:].strip() or 'no output'}")

    def _wait_ready(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        assert self.process is not None
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                with _NO_PROXY.open(f"http://{self.host}/v2/", timeout=1):
                    return True
            except urllib.error.HTTPError:
                return True  # it answers
            except OSError:
                time.sleep(0.05)
        return False

    def _log_text(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.process = self.process, None
        procs.stop(proc)

    def push(self, image: Image, repository: str, tag: str) -> str:
        """Copy ``image`` byte-identical into ``repository:tag``; returns the reference."""
        from slimmer.transports.copy import copy_image
        from slimmer.transports.registry.sink import RegistrySink
        ref = RegistryRef(self.host, repository, tag)
        copy_image(image, RegistrySink(ref))
        return str(ref)
