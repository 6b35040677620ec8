"""The language parts of the walk: what a Python interpreter, a Python source, a
distribution, a Node interpreter, a JavaScript file and a package.json bring into the
closure. Each side keeps its own state and reaches paths through the walker."""

from __future__ import annotations

import posixpath
from functools import partial
from typing import TYPE_CHECKING, Sequence

from slimmer.fs.closure.commands import Start, StartKind, shell_commands
from slimmer.fs.closure.facts import PackageJson, SourceFacts, TextFacts
from slimmer.fs.closure.graph import Need
from slimmer.fs.closure.node import TLS_BUILTINS, NodeModules, builtin
from slimmer.fs.closure.python import STARTUP, Dist, Dists, Modules, PyEnv, canonical, discover
from slimmer.fs.closure.sources import js_imports, python_imports
from slimmer.fs.closure.tree import norm

if TYPE_CHECKING:
    from slimmer.fs.closure.walk import Walker


class PythonFollow:
    """Interpreters, their environments, imports and distributions."""

    def __init__(self, walker: Walker) -> None:
        self.w = walker
        self.envs: dict[str, PyEnv] = {}
        self.modules = Modules(walker.tree)
        self.dists = Dists(walker.tree)
        self.script_dirs: list[str] = []
        self.extra_dirs: list[str] = []
        self.cwd = False
        self.seen_dists: set[str] = set()

    def search_path(self) -> list[str]:
        """sys.path as far as the closure knows it, every interpreter together."""
        out = list(self.script_dirs)
        if self.cwd:
            out.append(self.w.workdir)
        for env in self.envs.values():
            out.extend(env.stdlib + env.dynload + env.sites)
        out.extend(self.extra_dirs)
        return list(dict.fromkeys(out))

    def script(self, path: str) -> None:
        """A Python file run as a program: its directory is sys.path[0]."""
        d = posixpath.dirname(path)
        if d not in self.script_dirs:
            self.script_dirs.append(d)

    def interpreter(self, path: str, names: Sequence[str], version: str | None) -> None:
        """A Python interpreter: its stdlib extension modules, start-up modules, the whole
        ``encodings`` package (codecs are looked up by name at run time) and site .pth files."""
        if path in self.envs:
            return
        w = self.w
        env = self.envs[path] = discover(w.tree, names, version, w.env, w.home)
        for site in env.sites:
            self.dists.add_site(site)
        for d in env.dynload:
            for child in w.tree.children(w.tree.resolve(d).path or ""):
                if child.endswith(".so"):
                    w.visit(w.reach(child, path, Need.STDLIB), child)
        for name in STARTUP:
            self.module(name, path, Need.STARTUP)
        for std in env.stdlib:
            for child in w.tree.children(w.tree.resolve(f"{std}/encodings").path or ""):
                if child.endswith(".py"):
                    w.visit(w.reach(child, path, Need.CODECS), child)
        for site in env.sites:
            real = w.tree.resolve(site).path or ""
            for child in w.tree.children(real):
                if child.endswith(".pth"):
                    final = w.reach(child, path, Need.PTH)
                    if final is not None:
                        self.pth(final, real)

    def pth(self, path: str, site: str) -> None:
        """A site .pth file: ``import`` lines run at start-up, other lines extend sys.path."""
        facts = self.w.tree.facts_of(path)
        for line in facts.lines if isinstance(facts, TextFacts) else ():
            if line.startswith(("import ", "import\t")):
                for name in python_imports(line.encode()).imports:
                    self.module(name, path, Need.IMPORT)
            else:
                d = norm(posixpath.join("/" + site, line))
                if d not in self.extra_dirs and self.w.tree.resolve(d).path is not None:
                    self.extra_dirs.append(d)

    def module(self, dotted: str, parent: str, need: Need) -> None:
        for f in self.modules.find(dotted, self.search_path()):
            self.w.visit(self.w.reach(f, parent, need), f)

    def start(self, start: Start, interp: str) -> None:
        """``python -m MOD`` (the module and its ``__main__``) or ``python -c CODE``."""
        self.cwd = True
        if start.kind == StartKind.PY_MODULE:
            self.module(start.value, interp, Need.ARGUMENT)
            self.module(start.value + ".__main__", interp, Need.ARGUMENT)
        else:
            for name in python_imports(start.value.encode()).imports:
                self.module(name, interp, Need.IMPORT)

    def source(self, path: str, facts: SourceFacts) -> None:
        """A Python source in the closure: its distribution and the modules it imports."""
        w = self.w
        if facts.error:
            w.problem("unparseable", f"/{path}: unparseable Python source ({facts.error}); "
                                     "its imports are not followed")
        if path.endswith("certifi/__init__.py"):
            w.ca(path)
            w.reach(posixpath.join(posixpath.dirname(path), "cacert.pem"), path, Need.CA)
        search = self.search_path() or [self.modules.site_root(path)]
        for name in facts.imports:
            if name.split(".")[0] in ("ssl", "_ssl"):
                w.ca(path)
            files = (self.modules.find_relative(path, name) if name.startswith(".")
                     else self.modules.find(name, search))
            for f in files:
                w.visit(w.reach(f, path, Need.IMPORT), f)
        dist = self.dists.by_file.get(path)
        if dist is not None:   # after the imports queued above: their chains name imports
            w.late.append(partial(self.dist, dist, path, Need.DISTRIBUTION))

    def dist(self, dist: Dist, parent: str, need: Need) -> None:
        """A distribution in the closure: its metadata, every extension module it installed,
        and the distributions it requires (with their top-level modules)."""
        if dist.node in self.seen_dists:
            return
        self.seen_dists.add(dist.node)
        w = self.w
        node = w.reach(dist.node, parent, need) or parent
        for ext in dist.extension_modules():
            w.visit(w.reach(ext, node, Need.EXTENSION), ext)
        for req in dist.requires:
            dep = self.dists.by_name.get(canonical(req))
            if dep is None or dep.node in self.seen_dists:
                continue
            w.late.append(partial(self._required, dep, node))

    def _required(self, dep: Dist, parent: str) -> None:
        self.dist(dep, parent, Need.REQUIRES)
        for top in dep.top_level:
            self.module(top, dep.node, Need.TOP_LEVEL)


class NodeFollow:
    """The Node interpreter, JavaScript files, packages and their addons."""

    def __init__(self, walker: Walker) -> None:
        self.w = walker
        self.mods = NodeModules(walker.tree, walker.env.get("NODE_PATH", "").split(":"))

    def interpreter(self, path: str, names: Sequence[str]) -> None:
        """Node's global folders: $HOME/.node_modules, $HOME/.node_libraries, PREFIX/lib/node."""
        home = norm(self.w.home)
        dirs = [f"{home}/.node_modules", f"{home}/.node_libraries"]
        dirs += [norm(posixpath.dirname(posixpath.dirname("/" + n)) + "/lib/node") for n in names]
        for d in dirs:
            if d not in self.mods.global_dirs:
                self.mods.global_dirs.append(d)

    def start(self, start: Start, interp: str) -> None:
        """``node -r MOD``, ``node -e CODE``, ``node script`` (extensions tried) or
        ``npm run NAME`` (the script from the working directory's package.json)."""
        w = self.w
        if start.kind == StartKind.JS_REQUIRE:
            self.require(start.value, w.workdir, interp)
        elif start.kind == StartKind.JS_CODE:
            for spec in js_imports(start.value.encode()).imports:
                self.require(spec, w.workdir, interp)
        elif start.kind == StartKind.JS_SCRIPT:
            x = norm(posixpath.join("/" + w.workdir, start.value))
            hit = self.mods.load_file(x)
            for f in [hit] if hit else self.mods.load_dir(x):
                w.visit(w.reach(f, interp, Need.ARGUMENT), f)
        elif start.kind == StartKind.NPM_SCRIPT:
            self._npm(start.value, interp)

    def _npm(self, name: str, interp: str) -> None:
        w = self.w
        pj = w.reach(posixpath.join(w.workdir, "package.json"), interp, Need.SCRIPT)
        facts = w.tree.facts_of(pj) if pj else None
        scripts = dict(facts.scripts) if isinstance(facts, PackageJson) else {}
        if name == "start" and "start" not in scripts:
            scripts["start"] = "node server.js"   # npm's default
        bins = [posixpath.join("/" + w.workdir, "node_modules/.bin")]
        for key in (f"pre{name}", name, f"post{name}"):
            for command in shell_commands(scripts.get(key, ""), Need.SCRIPT):
                w.command(command, pj or interp, Need.SCRIPT, bins)

    def source(self, path: str, facts: SourceFacts) -> None:
        """A JavaScript file in the closure: its package.json and what it requires."""
        w = self.w
        if facts.error:
            w.problem("unparseable", f"/{path}: JavaScript source not read ({facts.error}); "
                                     "its requires are not followed")
        pj = self.mods.package_of(path)
        if pj is not None:
            w.visit(w.reach(pj, path, Need.PACKAGE), pj)
        for spec in facts.imports:
            self.require(spec, posixpath.dirname(path), path)

    def require(self, spec: str, from_dir: str, parent: str) -> None:
        w = self.w
        core = builtin(spec)
        if core is not None:
            if core in TLS_BUILTINS:
                w.ca(parent)
            return
        found = self.mods.resolve(spec, from_dir)
        if found.package is not None:
            pj = posixpath.join(found.package, "package.json")
            w.visit(w.reach(pj, parent, Need.PACKAGE), pj)
        for f in found.files:
            w.visit(w.reach(f, parent, Need.REQUIRE), f)

    def package(self, path: str, facts: PackageJson) -> None:
        """A package.json in the closure: the package's addons, and each dependency's
        package.json and entry files."""
        w = self.w
        if facts.error:
            w.problem("unparseable", f"/{path}: {facts.error}; its dependencies are not "
                                     "followed")
        pkg = posixpath.dirname(path)
        for addon in self.mods.addons(pkg):
            w.visit(w.reach(addon, path, Need.ADDON), addon)
        for dep in facts.dependencies:
            found = self.mods.resolve(dep, pkg)
            if found.package is None:
                continue
            dep_pj = posixpath.join(found.package, "package.json")
            node = w.reach(dep_pj, path, Need.DEPENDENCY)
            w.visit(node, dep_pj)
            for f in found.files:
                w.visit(w.reach(f, node or path, Need.ENTRY), f)
