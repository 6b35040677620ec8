"""The walk that computes the closure: from the starting points (Entrypoint, Cmd,
Healthcheck, shebang interpreters, ``--keep`` files, a few system files) along symlinks,
PT_INTERP and DT_NEEDED (resolved as the dynamic linker does), what libc and libssl load
without saying so, and, through ``follow``, Python imports and distributions and Node
requires, packages and addons. Pure over the final tree and the scan's facts."""

from __future__ import annotations

import posixpath
from collections import deque
from functools import partial
from typing import Any, Callable, Mapping, Sequence

from slimmer.fs.closure import ldso
from slimmer.fs.closure.commands import Command, StartKind, config_commands, interpreter_starts
from slimmer.fs.closure.facts import ElfFacts, Facts, Lang, PackageJson, SourceFacts, TextFacts
from slimmer.fs.closure.follow import NodeFollow, PythonFollow
from slimmer.fs.closure.graph import Closure, Link, Need
from slimmer.fs.closure.node import NODE_NAMES
from slimmer.fs.closure.python import python_version
from slimmer.fs.closure.tree import Tree, norm
from slimmer.fs.index import Rec
from slimmer.fs.stack import Stack
from slimmer.globs import compile_glob

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_FILES = ("etc/passwd", "etc/group", "etc/nsswitch.conf")
CA_PATHS = ("etc/ssl/certs", "etc/ssl/cert.pem", "etc/ssl/openssl.cnf", "etc/ssl/ca-bundle.pem",
            "etc/pki/tls/certs", "etc/pki/tls/cert.pem", "etc/pki/tls/openssl.cnf",
            "etc/pki/ca-trust/extracted", "usr/lib/ssl/cert.pem", "usr/lib/ssl/certs",
            "usr/lib/ssl/openssl.cnf", "usr/local/ssl/cert.pem", "usr/local/ssl/certs")
_SHOWN = 5   # warnings of one kind listed before "... and N more"


class Walker:
    """One closure computation (see the module docstring)."""

    def __init__(self, tree: Tree, config: Any, keep: Sequence[str]) -> None:
        self.tree = tree
        self.config = config
        self.keep = keep
        self.closure = Closure()
        self.env: Mapping[str, str] = config.env if config is not None else {}
        self.workdir = norm(config.working_dir if config is not None else "/")
        self.path_dirs = [d for d in self.env.get("PATH", DEFAULT_PATH).split(":") if d]
        llp = self.env.get("LD_LIBRARY_PATH")
        self.ld_library_path = [norm(posixpath.join("/" + self.workdir, d or "."))
                                for d in llp.split(":")] if llp else []
        self.home = self.env.get("HOME") or _home(config.user if config is not None else "")
        self.queue: deque[Callable[[], None]] = deque()
        self.late: deque[Callable[[], None]] = deque()
        self.elf_ctx: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
        self.visited: set[str] = set()
        self._reached: dict[str, str | None] = {}   # reach's result per path, loops aside
        self.elf_edges: dict[str, set[str]] = {}
        self.missing: dict[str, list[str]] = {}
        self.problems: dict[str, list[str]] = {}
        self.once: set[str] = set()
        self._conf: tuple[list[str], list[str], list[str]] | None = None
        self.python = PythonFollow(self)
        self.node = NodeFollow(self)

    # -- the walk ------------------------------------------------------------------------
    def run(self) -> Closure:
        if self.config is not None:
            for command in config_commands(self.config):
                self.command(command)
        for path in SYSTEM_FILES:
            self.reach(path, None, Need.SYSTEM)
        self._keep_roots()
        while self.queue or self.late:
            while self.queue:
                self.queue.popleft()()
            if self.late:
                self.late.popleft()()
        self._cycles()
        self.closure.warnings.extend(self._warnings())
        return self.closure

    def _keep_roots(self) -> None:
        globs = []
        for pattern in self.keep:
            try:
                globs.append(compile_glob(pattern))
            except ValueError:
                continue   # the matcher reports bad globs
        if not globs:
            return
        for path in sorted(self.tree.final.entries):
            glob = next((g for g in globs if g.matches("/" + path)), None)
            if glob is not None and path:
                final = self.reach(path, None, Need.KEEP, glob.pattern)
                if final is not None:
                    self.visit(final, path)

    def problem(self, kind: str, message: str) -> None:
        self.problems.setdefault(kind, []).append(message)

    def reach(self, path: str, parent: str | None, need: Need, detail: str = "") -> str | None:
        """Add the file ``path`` leads to, and every symlink on the way, to the closure;
        returns the resolved path (None if nothing is there). Reaching a path again adds
        nothing (the first link stays), so that is answered from memory: the sources of
        an ML image reach the same modules a quarter of a million times."""
        if path in self._reached:
            return self._reached[path]
        res = self.tree.resolve(path)
        if res.loop:
            self.problem("loop", f"symlink loop at /{norm(path)}")
            return None
        self._reached[path] = res.path
        if res.path is None:
            return None
        for link in res.dir_links:   # needed too, but not a step of the chain
            self.closure.add(link, Link(parent, need, detail))
        prev, prev_need = parent, need
        for link in res.symlinks:
            self.closure.add(link, Link(prev, prev_need, detail))
            prev, prev_need, detail = link, Need.SYMLINK, ""
        final = res.path
        if final:
            self.closure.add(final, Link(prev, prev_need, detail))
            target = self.tree.hardlink_target(final)
            if target is not None:
                self.closure.add(norm(target), Link(final, Need.HARDLINK))
        return final

    def visit(self, final: str | None, loaded_as: str, inherited: Sequence[str] = ()) -> None:
        """Follow what the file at ``final`` (reached as ``loaded_as``) needs, once (an ELF
        object again when it is reached with new origins or inherited DT_RPATH)."""
        if not final or final in self.visited:   # only files other than ELF objects
            return
        facts = self.tree.facts_of(final)
        if isinstance(facts, ElfFacts):
            names = frozenset({norm(loaded_as), final})
            old = self.elf_ctx.get(final)
            if old is not None and names <= old[0] and set(inherited) <= set(old[1]):
                return
            prev_names, prev_rpath = old if old is not None else (frozenset(), ())
            self.elf_ctx[final] = (prev_names | names,
                                   prev_rpath + tuple(r for r in inherited if r not in prev_rpath))
            self.queue.append(lambda: self._elf(final, facts))
            return
        self.visited.add(final)
        rec = self._data_rec(final)
        if rec is not None and rec.shebang:
            self._shebang(final, rec.shebang)
        self._follow(final, facts)

    def _follow(self, final: str, facts: Facts | None) -> None:
        if isinstance(facts, SourceFacts):
            side: Any = self.python if facts.lang == Lang.PYTHON else self.node
            self.late.append(lambda: side.source(final, facts))
        elif isinstance(facts, PackageJson):
            self.late.append(lambda: self.node.package(final, facts))

    def _data_rec(self, path: str) -> Rec | None:
        ref = self.tree.final.get(path)
        if ref is None:
            return None
        ref = self.tree.stack.data_ref(ref)
        return self.tree.recs[ref[0]][ref[1]]

    # -- command lines -------------------------------------------------------------------
    def command(self, command: Command, parent: str | None = None,
                need: Need = Need.ARGUMENT, extra_path: Sequence[str] = ()) -> None:
        """Reach every word of a command line that names a file, then what interpreters on
        it run."""
        finals: dict[str, str] = {}
        for word, is_cmd, root in zip(command.words, command.cmd, command.needs):
            final = self.word(word, is_cmd, parent, root if parent is None else need, extra_path)
            if final is not None:
                finals[word] = final
        for start in interpreter_starts(command.words):
            interp = finals.get(start.interpreter)
            if interp is None:
                continue
            side: Any = self.python if start.kind in (StartKind.PY_MODULE,
                                                      StartKind.PY_CODE) else self.node
            self.late.append(partial(side.start, start, interp))

    def word(self, word: str, is_cmd: bool, parent: str | None, need: Need,
             extra_path: Sequence[str] = ()) -> str | None:
        """The file a word names: a path (from the working directory), else a command on
        PATH or (not in command position) a file in the working directory."""
        if not word or word.startswith("-") or "\0" in word:
            return None
        if "/" in word:
            candidates = [posixpath.join("/" + self.workdir, word)]
        else:
            candidates = [posixpath.join(d, word) for d in [*extra_path, *self.path_dirs]]
            if not is_cmd:
                candidates.append(posixpath.join("/" + self.workdir, word))
        for cand in candidates:
            final = self.reach(cand, parent, need)
            if final is None:
                continue
            self.visit(final, cand)
            facts = self.tree.facts_of(final)
            if isinstance(facts, SourceFacts) and facts.lang == Lang.PYTHON:
                self.python.script(final)
            return final
        return None

    def _shebang(self, script: str, shebang: str) -> None:
        """The interpreter of a script (``#!/usr/bin/env NAME``: env, then NAME on PATH)."""
        words = shebang.strip().split()
        if not words:
            return
        cmd = [True] + [False] * (len(words) - 1)
        if posixpath.basename(words[0]) == "env":
            k = next((i for i, a in enumerate(words[1:], 1)
                      if not a.startswith("-") and "=" not in a), None)
            if k is not None:
                cmd[k] = True
        self.command(Command(words, cmd, [Need.SHEBANG] * len(words)), script, Need.SHEBANG)

    # -- ELF -------------------------------------------------------------------------------
    def conf(self) -> tuple[list[str], list[str], list[str]]:
        if self._conf is None:
            self._conf = ldso.config_dirs(self.tree)
            for w in self._conf[2]:
                self.problem("unparseable", w)
        return self._conf

    def find_lib(self, name: str, dirs: Sequence[str], elf: ElfFacts) -> str | None:
        """The path the linker opens for DT_NEEDED ``name`` (a compatible ELF first)."""
        if "/" in name:
            candidates = [norm(posixpath.join("/" + self.workdir, name))]
        else:
            candidates = [posixpath.join(d, name) for d in dirs]
        fallback = None
        for cand in candidates:
            res = self.tree.resolve(cand)
            if res.path is None or self.tree.is_dir(res.path):
                continue
            facts = self.tree.facts_of(res.path)
            if isinstance(facts, ElfFacts):
                if ldso.compatible(elf, facts):
                    return cand
                continue
            fallback = fallback or cand
        return fallback

    def _elf(self, path: str, facts: ElfFacts) -> None:
        names, inherited = self.elf_ctx[path]
        if facts.error and f"elf:{path}" not in self.once:
            self.once.add(f"elf:{path}")
            what = "ELF read only in part" if facts.partial else "malformed ELF"
            self.problem("malformed", f"/{path}: {what} ({facts.error}); what it "
                                      "loads is not followed")
        if facts.interp:
            interp = self.reach(facts.interp, path, Need.INTERP)
            self.visit(interp, facts.interp)
            if interp and "ldconf" not in self.once:
                self.once.add("ldconf")
                for conf in [ldso.CACHE, *self.conf()[1]]:
                    self.reach(conf, interp, Need.LD_CACHE)
        origins = sorted({posixpath.dirname(n) for n in names})
        own = [] if facts.runpath else [d for e in facts.rpath
                                        for d in ldso.expand(e, origins, facts)]
        child_rpath = tuple(dict.fromkeys([*inherited, *own]))
        dirs = ldso.search_dirs(facts, origins, inherited, self.ld_library_path, self.conf()[0])
        for name in facts.needed:
            cand = self.find_lib(name, dirs, facts)
            if cand is None:
                needers = self.missing.setdefault(name, [])
                if path not in needers:
                    needers.append(path)
                continue
            final = self.reach(cand, path, Need.NEEDED)
            if final:
                self.elf_edges.setdefault(path, set()).add(final)
                self.visit(final, cand, child_rpath)
        self._triggers(path, facts, sorted(names))

    def _triggers(self, path: str, facts: ElfFacts, names: Sequence[str]) -> None:
        """What an object's identity implies: an interpreter's environment, the files libc
        and libssl open at run time."""
        is_python, version = python_version(names, facts)
        if is_python:
            self.python.interpreter(path, names, version)
        if any(posixpath.basename(n) in NODE_NAMES for n in names):
            self.node.interpreter(path, names)
        libs = (*facts.needed, facts.soname or "")
        if any(n.startswith(("libc.so", "libc.musl")) for n in libs):
            self._libc(path, facts)
        if any(n.startswith("libssl.so") for n in libs):
            self.ca(path)

    def _libc(self, path: str, facts: ElfFacts) -> None:
        if "libc" in self.once:
            return
        self.once.add("libc")
        services: set[str] = set()
        nss = self.tree.facts_of(self.tree.resolve("etc/nsswitch.conf").path or "")
        for line in nss.lines if isinstance(nss, TextFacts) else ():
            services.update(t for t in line.partition(":")[2].split() if not t.startswith("["))
        dirs = [*self.conf()[0], *ldso.default_dirs(facts)]
        libs = [(f"libnss_{s}.so.2", Need.NSS) for s in sorted(services)]
        for name, need in libs + [("libgcc_s.so.1", Need.UNWIND)]:
            cand = self.find_lib(name, dirs, facts)
            if cand is not None:
                self.visit(self.reach(cand, path, need), cand)

    def ca(self, parent: str) -> None:
        """The CA certificates TLS code reads (once, from the first thing that needs them)."""
        if "ca" in self.once:
            return
        self.once.add("ca")
        for path in CA_PATHS:
            final = self.reach(path, parent, Need.CA)
            if final is None or not self.tree.is_dir(final):
                continue
            todo = [final]
            while todo:
                for child in self.tree.children(todo.pop()):
                    got = self.reach(child, final, Need.CA)
                    if got is not None and self.tree.is_dir(got) and got == child:
                        todo.append(child)

    # -- warnings --------------------------------------------------------------------------
    def _cycles(self) -> None:
        """Note DT_NEEDED cycles (legal for the linker, but worth knowing)."""
        state: dict[str, int] = {}
        for start in sorted(self.elf_edges):
            if start in state:
                continue
            stack = [(start, iter(sorted(self.elf_edges.get(start, ()))))]
            state[start] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    ring = [n for n, _ in stack][[n for n, _ in stack].index(nxt):] + [nxt]
                    self.problem("cycle", "dependency cycle: " + " -> ".join(
                        "/" + n for n in ring))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(sorted(self.elf_edges.get(nxt, ())))))

    def _warnings(self) -> list[str]:
        out = []
        for name, needers in sorted(self.missing.items()):
            more = f" and {len(needers) - 1} more" if len(needers) > 1 else ""
            out.append(f"{name}, needed by /{needers[0]}{more}, is not in the image "
                       "(the input image cannot load it either)")
        for kind in ("malformed", "loop", "cycle", "unparseable"):
            items = list(dict.fromkeys(self.problems.get(kind, ())))
            out.extend(items[:_SHOWN])
            if len(items) > _SHOWN:
                out.append(f"... and {len(items) - _SHOWN} more like the last one")
        return ["closure: " + w for w in out]


def _home(user: str) -> str:
    name = user.split(":", 1)[0]
    return "/root" if name in ("", "root", "0") else f"/home/{name}"


def compute_closure(stack: Stack, recs: Sequence[Sequence[Rec]],
                    facts: Sequence[Mapping[int, Facts]], config: Any,
                    keep: Sequence[str] = ()) -> Closure:
    """Every path of the final tree the image needs at run time, with how it was reached.
    ``facts`` are the scan's facts per layer; ``config`` the ImageConfig (or None);
    ``keep`` the user's --keep globs (their files are starting points too)."""
    return Walker(Tree(stack, recs, facts), config, keep).run()
