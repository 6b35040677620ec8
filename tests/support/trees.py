"""A sample tree in two layers that exercises what umoci and slimmer must carry through: hard
links, xattrs (binary values, security.capability), setuid, big ids, a fifo, a device, long
names and symlinks, a sparse file, whiteouts and opaque directories."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from support.imagetools import CAP_NET_BIND_SERVICE, Diff, write_file

LONG_NAME = "L" * 150
DEEP_DIR = "/".join(f"deep{i:05d}" for i in range(30))  # 299 characters


def base_layer(root: Path) -> None:
    write_file(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    write_file(root / "d/a", "a")
    write_file(root / "d/b", "b")
    write_file(root / "e/x", "x")
    write_file(root / "e/sub/y", "y")
    write_file(root / "f", "shared", xattrs={"user.note": b"\x00\xffbinary"})
    os.link(root / "f", root / "f2")
    os.link(root / "f", root / "g")
    write_file(root / "usr/bin/ping", b"\x7fELF", mode=0o755, xattrs={"security.capability": CAP_NET_BIND_SERVICE})
    write_file(root / "usr/bin/su", b"su", uid=1_000_000, gid=1_000_001, mode=0o4755)
    os.mkfifo(root / "fifo", 0o600)
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(root / "dev/null", 0o666)
    write_file(root / LONG_NAME, "long name")
    write_file(root / DEEP_DIR / "leaf", "deep")
    os.symlink("f", root / "link-to-f")
    os.symlink("/nowhere/" + "t" * 200, root / "long-symlink")
    with open(root / "sparse", "wb") as fh:
        fh.seek(1 << 20)
        fh.write(b"end")


def change_layer(root: Path) -> None:
    shutil.rmtree(root / "e")  # deleted directory
    os.unlink(root / "g")  # one path of a hardlink group
    shutil.rmtree(root / "d")  # deleted and recreated directory
    write_file(root / "d/c", "c")
    (root / "f2").write_text("changed through f2")  # changes f too
    os.setxattr(root / "f", "user.note", b"new")
    os.chmod(root / "etc/passwd", 0o600)


LAYERS = [Diff(base_layer, created_by="base"), Diff(change_layer, created_by="changes")]
