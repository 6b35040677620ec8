"""Node.js in the closure: resolving ``require``/``import`` specifiers the way Node does
(relative files with their extensions, directories with package.json ``main`` or ``index``,
bare names through the ``node_modules`` directories above the requiring file, NODE_PATH and
the global folders, package ``exports``), and the ``.node`` addons of a package."""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, field
from typing import Sequence

from slimmer.fs.closure.facts import PackageJson
from slimmer.fs.closure.tree import Tree, norm

BUILTINS = frozenset("""assert async_hooks buffer child_process cluster console constants crypto
dgram diagnostics_channel dns domain events fs http http2 https inspector module net os path
perf_hooks process punycode querystring readline repl stream string_decoder sys timers tls
trace_events tty url util v8 vm wasi worker_threads zlib test sqlite sea""".split())
#: Builtins that make Node read CA certificates (--use-openssl-ca, NODE_EXTRA_CA_CERTS).
TLS_BUILTINS = frozenset({"https", "tls", "http2"})
NODE_NAMES = frozenset({"node", "nodejs"})
_FILE_EXTS = ("", ".js", ".json", ".node", ".mjs", ".cjs")
_INDEXES = ("index.js", "index.json", "index.node", "index.mjs", "index.cjs")


def builtin(spec: str) -> str | None:
    """The core module a specifier names ("node:fs/promises" -> "fs"), or None."""
    name = spec.removeprefix("node:").split("/", 1)[0]
    if spec.startswith("node:") or name in BUILTINS:
        return name
    return None


@dataclass
class Found:
    """What a specifier resolved to: the files loaded and the package directory (bare
    specifiers) whose package.json Node read."""

    files: list[str] = field(default_factory=list)
    package: str | None = None


class NodeModules:
    """Node's module resolution over the final tree."""

    def __init__(self, tree: Tree, node_path: Sequence[str] = (),
                 global_dirs: Sequence[str] = ()) -> None:
        self.tree = tree
        self.node_path = [norm(p) for p in node_path if p.startswith("/")]
        self.global_dirs = list(global_dirs)

    def _file(self, path: str) -> str | None:
        real = self.tree.resolve(path).path
        return path if real is not None and not self.tree.is_dir(real) else None

    def _dir(self, path: str) -> bool:
        real = self.tree.resolve(path).path
        return real is not None and self.tree.is_dir(real)

    def package_json(self, pkg: str) -> PackageJson | None:
        real = self.tree.resolve(posixpath.join(pkg, "package.json")).path
        facts = self.tree.facts_of(real) if real is not None else None
        return facts if isinstance(facts, PackageJson) else None

    def load_file(self, x: str) -> str | None:
        """LOAD_AS_FILE: X itself or with one of the extensions."""
        for ext in _FILE_EXTS:
            hit = self._file(x + ext)
            if hit is not None:
                return hit
        return None

    def load_dir(self, x: str) -> list[str]:
        """LOAD_AS_DIRECTORY: package.json ``main`` (and the "." exports), else index.*."""
        out: list[str] = []
        pj = self.package_json(x)
        if pj is not None:
            if pj.main:
                main = norm(posixpath.join("/" + x, pj.main))
                hit = self.load_file(main) or next(
                    (f for f in (self._file(posixpath.join(main, i)) for i in _INDEXES) if f),
                    None)
                if hit:
                    out.append(hit)
            out.extend(self._exports(x, pj, "."))
        if not out:
            out.extend(f for f in (self._file(posixpath.join(x, i)) for i in _INDEXES)
                       if f)
        return out[:1] + sorted(set(out[1:]) - set(out[:1]))

    def _exports(self, pkg: str, pj: PackageJson, key: str) -> list[str]:
        """Files the ``exports`` map gives for subpath ``key`` ("." or "./sub")."""
        out: list[str] = []
        for pattern, targets in pj.exports or ():
            if pattern == key:
                subs = [""]
            elif "*" in pattern and fnmatch.fnmatchcase(key, pattern):
                head, _, tail = pattern.partition("*")
                subs = [key[len(head):len(key) - len(tail) if tail else None]]
            else:
                continue
            for target in targets:
                for sub in subs:
                    hit = self._file(norm(posixpath.join("/" + pkg, target.replace("*", sub))))
                    if hit and hit not in out:
                        out.append(hit)
        return out

    def resolve(self, spec: str, from_dir: str) -> Found:
        """Resolve a non-builtin specifier required from directory ``from_dir``."""
        if spec.startswith(("./", "../", "/")) or spec in (".", ".."):
            x = norm(posixpath.join("/" + from_dir, spec))
            hit = self.load_file(x)
            return Found([hit] if hit else self.load_dir(x) if self._dir(x) else [])
        parts = spec.split("/")
        n = 2 if spec.startswith("@") else 1
        name, sub = "/".join(parts[:n]), "/".join(parts[n:])
        for d in self.module_dirs(from_dir):
            pkg = posixpath.join(d, name)
            if not self._dir(pkg):
                continue
            pj = self.package_json(pkg)
            if not sub:
                return Found(self.load_dir(pkg), pkg)
            if pj is not None and pj.exports is not None:
                return Found(self._exports(pkg, pj, "./" + sub), pkg)
            x = posixpath.join(pkg, sub)
            hit = self.load_file(x)
            return Found([hit] if hit else self.load_dir(x) if self._dir(x) else [], pkg)
        return Found()

    def module_dirs(self, start: str) -> list[str]:
        """NODE_MODULES_PATHS(start), then NODE_PATH and the global folders."""
        out: list[str] = []
        d = start
        while True:
            if d.rpartition("/")[2] != "node_modules":
                out.append(posixpath.join(d, "node_modules") if d else "node_modules")
            if not d:
                break
            d = posixpath.dirname(d)
        return out + self.node_path + self.global_dirs

    def package_of(self, path: str) -> str | None:
        """The nearest package.json above ``path`` (Node reads it for ``type``)."""
        d = posixpath.dirname(path)
        while True:
            hit = self._file(posixpath.join(d, "package.json") if d else "package.json")
            if hit is not None:
                return hit
            if not d or d.rpartition("/")[2] == "node_modules":
                return None
            d = posixpath.dirname(d)

    def addons(self, pkg: str) -> list[str]:
        """The ``.node`` files of a package, not those of packages nested in it."""
        real = self.tree.resolve(pkg).path
        out: list[str] = []
        todo = [real] if real is not None else []
        while todo:
            d = todo.pop()
            for child in self.tree.children(d):
                base = child.rpartition("/")[2]
                if base == "node_modules":
                    continue
                if self.tree.is_dir(child):
                    todo.append(child)
                elif base.endswith(".node"):
                    out.append(child)
        return sorted(out)
