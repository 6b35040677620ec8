"""Unpack layers into a directory the way a runtime's snapshotter would see the result: in
order, whiteouts and opaque markers applied, every path resolved inside the root (a symlink
``etc -> /`` in the image means the image's root, never this machine's). The built-in proxy's
unpack step; files get their data, mode and (as root) owner, not their mtimes or xattrs."""

from __future__ import annotations

import os
import shutil
import stat
from typing import BinaryIO

from slimmer.codec.tarread import Entry, TarReader
from slimmer.errors import LayerError
from slimmer.oci.layer import DIR, FILE, HARDLINK, META, OPAQUE, OTHER, SYMLINK, WHITEOUT

_MAX_HOPS = 40
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0)


def remove_tree(path: str) -> None:
    """Remove a tree unpacked here, also where it holds read-only directories."""
    def retry(func: object, name: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
                shutil.rmtree(name, ignore_errors=True)
            else:
                os.unlink(name)
        except FileNotFoundError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)


class Unpacker:
    """Applies layers one after the other to ``root`` (an existing, empty directory)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.as_root = os.geteuid() == 0
        self._parents: dict[str, str] = {}

    def resolve(self, path: str, follow_last: bool = False) -> str:
        """Host path of the image path ``path``, following symlinks as if the root were
        ``/``; ``..`` never climbs above the root."""
        cur: list[str] = []
        todo = [p for p in path.split("/") if p]
        todo.reverse()
        hops = 0
        while todo:
            comp = todo.pop()
            if comp == ".":
                continue
            if comp == "..":
                if cur:
                    cur.pop()
                continue
            host = os.path.join(self.root, *cur, comp)
            if (todo or follow_last) and os.path.islink(host):
                hops += 1
                if hops > _MAX_HOPS:
                    raise LayerError(f"unpacking {path!r}: too many levels of symbolic links")
                target = os.readlink(host)
                if target.startswith("/"):
                    cur = []
                todo.extend(reversed([p for p in target.split("/") if p]))
                continue
            cur.append(comp)
        return os.path.join(self.root, *cur)

    def _parent(self, path: str) -> str:
        """Host directory that will hold ``path``, created (as directories) if missing."""
        parent = path.rpartition("/")[0]
        found = self._parents.get(parent)
        if found is not None:
            return found
        host = self.resolve(parent, follow_last=True) if parent else self.root
        if not os.path.isdir(host):
            if os.path.lexists(host):
                os.unlink(host)
            os.makedirs(host, 0o755, exist_ok=True)
        self._parents[parent] = host
        return host

    def apply(self, tar: BinaryIO, what: str) -> None:
        """Apply one layer's tar stream."""
        reader = TarReader(tar, what)
        opaque_done: set[str] = set()
        created: set[str] = set()
        for entry in reader:
            if entry.kind == META:
                continue
            if entry.kind in (WHITEOUT, OPAQUE):
                self._whiteout(entry, created, opaque_done)
                continue
            path = entry.path
            while path and path not in created:  # the entry and the directories above it
                created.add(path)
                path = path.rpartition("/")[0]
            self._write(entry, reader)

    def _whiteout(self, entry: Entry, created: set[str], opaque_done: set[str]) -> None:
        """``.wh.NAME`` removes NAME; an opaque marker removes what lower layers put in its
        directory (what this layer wrote there stays)."""
        self._parents.clear()
        target = entry.target
        if entry.kind == WHITEOUT:
            try:
                _remove(self.resolve(target))
            except LayerError:
                pass  # its parent is a symlink loop: nothing there to remove
            return
        if target in opaque_done:
            return
        opaque_done.add(target)
        try:
            directory = self.resolve(target) if target else self.root
        except LayerError:
            return  # a parent is a symlink loop: no such directory
        if not os.path.isdir(directory) or os.path.islink(directory):
            return
        self._clear(directory, target + "/" if target else "", created)

    def _clear(self, directory: str, prefix: str, created: set[str]) -> None:
        """Remove what is below ``directory`` except what this layer wrote and the
        directories above it, as containerd's applier keeps its ``unpackedPaths``."""
        for name in os.listdir(directory):
            path, host = prefix + name, os.path.join(directory, name)
            if path not in created:
                _remove(host)
            elif os.path.isdir(host) and not os.path.islink(host):
                self._clear(host, path + "/", created)

    def _write(self, entry: Entry, reader: TarReader) -> None:
        if not entry.path:  # the root directory itself
            self._dir_mode(self.root, entry)
            return
        parent = self._parent(entry.path)
        host = os.path.join(parent, entry.path.rpartition("/")[2])
        exists = os.path.lexists(host)
        if entry.kind == DIR:
            if exists and not (os.path.isdir(host) and not os.path.islink(host)):
                _unlink(host)
                exists = False
            if not exists:
                os.mkdir(host, 0o700)
            self._own(host, entry)
            self._dir_mode(host, entry)
            return
        if exists:
            self._parents.clear()
            _remove(host)
        if entry.kind == FILE:
            fd = os.open(host, _WRITE_FLAGS, 0o600)
            with os.fdopen(fd, "wb") as fh:
                reader.copy_data(fh.write, with_padding=False)
                self._own(fh.fileno(), entry)
                os.fchmod(fh.fileno(), entry.mode & 0o7777 if self.as_root
                          else (entry.mode & 0o777) | 0o600)
        elif entry.kind == SYMLINK:
            os.symlink(entry.linkname, host)
            self._parents.clear()
            self._own(host, entry)
        elif entry.kind == HARDLINK:
            target = self.resolve(entry.linkname)
            if not os.path.lexists(target) or os.path.isdir(target):
                raise LayerError(f"unpacking {entry.path!r}: hardlink to missing "
                                 f"{entry.linkname!r}")
            os.link(target, host, follow_symlinks=False)
        elif entry.kind == OTHER and entry.typeflag == b"6":
            os.mkfifo(host, entry.mode & 0o777)
        # device nodes (typeflags 3, 4) are left out: creating them needs CAP_MKNOD and
        # a runtime's unpacker makes few of them

    def _dir_mode(self, host: str, entry: Entry) -> None:
        """A directory's mode (root writes anywhere; others keep u+rwx so later layers and
        the clean-up can write into it)."""
        os.chmod(host, entry.mode & 0o7777 if self.as_root else (entry.mode & 0o7777) | 0o700)

    def _own(self, target: str | int, entry: Entry) -> None:
        if not self.as_root:
            return
        if isinstance(target, int):
            os.fchown(target, entry.uid, entry.gid)
        else:
            os.chown(target, entry.uid, entry.gid, follow_symlinks=False)


def _remove(host: str) -> None:
    """Remove whatever is at ``host`` (a directory with everything in it)."""
    if os.path.isdir(host) and not os.path.islink(host):
        remove_tree(host)
    else:
        _unlink(host)


def _unlink(host: str) -> None:
    try:
        os.unlink(host)
    except (FileNotFoundError, NotADirectoryError):  # nothing there: a parent is a file
        pass
    except IsADirectoryError:
        remove_tree(host)
    except PermissionError:
        if os.path.lexists(host) and stat.S_ISDIR(os.lstat(host).st_mode):
            remove_tree(host)
        else:
            raise
