"""Small root filesystems made of this machine's own binaries (a test helper): files copied
with their modes and every symlink on their way (so /lib -> usr/lib and the libraries' soname
links come along), the libraries ``ldd`` lists, C code compiled with gcc, and running a
command inside an extracted tree with chroot (as root)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from support.memimage import Spec

CHROOT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def missing(*tools: str) -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0 or shutil.which("chroot") is None or shutil.which("unshare") is None:
        return "chroot and unshare need root"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is installed by scripts/setup --test"
    return None


class RootSpec:
    """Tar specs (memimage format) for files taken from the host, each path once."""

    def __init__(self) -> None:
        self.specs: list[Spec] = []
        self._seen: set[str] = set()

    def add(self, spec: Spec) -> None:
        if spec[1] not in self._seen:
            self._seen.add(spec[1])
            self.specs.append(spec)

    def host(self, path: str, at: str | None = None) -> None:
        """Copy host ``path`` (under ``at`` when given: then symlinks are not reproduced)."""
        if at is not None:
            real = os.path.realpath(path)
            self.add(("file", at.lstrip("/"), Path(real).read_bytes(),
                      os.stat(real).st_mode & 0o7777))
            return
        parts = [p for p in path.split("/") if p]
        cur = ""
        for i, part in enumerate(parts):
            cur = f"{cur}/{part}"
            if os.path.islink(cur):
                target = os.readlink(cur)
                self.add(("symlink", cur.lstrip("/"), target))
                rest = "/".join(parts[i + 1:])
                nxt = os.path.normpath(os.path.join(os.path.dirname(cur), target))
                self.host(nxt + ("/" + rest if rest else ""))
                return
        self.add(("file", cur.lstrip("/"), Path(cur).read_bytes(),
                  os.stat(cur).st_mode & 0o7777))

    def binary(self, path: str) -> None:
        """A host executable or library and every library ``ldd`` says it loads."""
        self.host(path)
        out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
        for lib in re.findall(r"(/\S+) \(0x", out):
            self.host(lib)

    def file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self.add(("file", path.lstrip("/"), data.encode() if isinstance(data, str) else data,
                  mode))


def compile_c(tmp: Path, name: str, source: str, *args: str) -> bytes:
    """Compile ``source`` with gcc in ``tmp`` (extra ``args``, e.g. -shared); the output."""
    (tmp / f"{name}.c").write_text(source)
    subprocess.run(["gcc", "-O1", "-o", name, f"{name}.c", *args], cwd=tmp, check=True,
                   capture_output=True)
    return (tmp / name).read_bytes()


def write_tree(fs: dict[str, tuple], root: Path) -> None:
    """Write a memimage final tree (path -> (kind, payload, mode)) under ``root``."""
    for path, (kind, payload, mode) in sorted(fs.items()):
        dest = root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            dest.mkdir(exist_ok=True)
        elif kind == "file":
            dest.write_bytes(payload)
            os.chmod(dest, mode)
        elif kind == "symlink":
            os.symlink(payload, dest)


def run_in(root: Path, argv: Iterable[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``root`` with chroot, with a small fixed environment and /proc
    (the dynamic linker reads /proc/self/exe for the executable's $ORIGIN). /proc is mounted
    in a private mount namespace (unshare), so it is gone when the command ends, whatever
    happens to this process."""
    (root / "proc").mkdir(exist_ok=True)
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([shutil.which("unshare") or "unshare", "--fork", "--pid", "--mount",
                           f"--mount-proc={root}/proc", chroot, str(root), *argv],
                          capture_output=True, text=True, env=CHROOT_ENV, timeout=60)
