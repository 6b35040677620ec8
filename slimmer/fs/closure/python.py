"""Python in the closure: an interpreter's environment (stdlib, lib-dynload, site
directories, venvs), module lookup the way the import system's path finder does it, and
installed distributions (``*.dist-info``: RECORD maps files to distributions, METADATA gives
``Requires-Dist``, top_level.txt the importable names)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from slimmer.fs.closure.facts import ElfFacts, TextFacts, TextKind
from slimmer.fs.closure.tree import Tree, norm

PYTHON_NAME = re.compile(r"python(\d+(?:\.\d+)?)?(?:[a-z]*)$")
_LIBPYTHON = re.compile(r"libpython(\d+\.\d+)")
_EXT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(?:cpython-[^.]+|abi3|pypy[^.]*)?\.?so$")
#: Modules the interpreter imports before the first line of any program runs.
STARTUP = ("site", "os", "stat", "posixpath", "genericpath", "_collections_abc", "codecs",
           "io", "abc", "_sitebuiltins", "encodings", "encodings.aliases", "encodings.utf_8",
           "sitecustomize", "usercustomize")


@dataclass
class PyEnv:
    """Where one interpreter finds code: stdlib directories (with ``lib-dynload``) and site
    directories, root-relative and existing."""

    interpreter: str
    version: str | None
    stdlib: list[str] = field(default_factory=list)
    dynload: list[str] = field(default_factory=list)
    sites: list[str] = field(default_factory=list)


def python_version(names: Sequence[str], elf: ElfFacts) -> tuple[bool, str | None]:
    """(is it a Python interpreter, its X.Y version if known) from the names it was run by
    and its DT_NEEDED."""
    version = None
    found = False
    for name in names:
        m = PYTHON_NAME.fullmatch(posixpath.basename(name))
        if m:
            found = True
            if m.group(1) and "." in m.group(1):
                version = version or m.group(1)
    for lib in elf.needed:
        m = _LIBPYTHON.match(lib)
        if m:
            found, version = True, version or m.group(1)
    return found, version


def discover(tree: Tree, names: Sequence[str], version: str | None, env: Mapping[str, str],
             home: str) -> PyEnv:
    """The environment of the interpreter run as ``names`` (the path it was started by and
    its real path): PREFIX/lib/pythonX.Y of each, a venv's site-packages, Debian's
    dist-packages, the user site and PYTHONPATH."""
    prefixes: list[str] = []
    venvs: list[str] = []
    for name in names:
        bindir = posixpath.dirname(norm(name))
        prefix = posixpath.dirname(bindir)
        if prefix not in prefixes:
            prefixes.append(prefix)
        if tree.resolve(posixpath.join(prefix, "pyvenv.cfg")).path is not None:
            venvs.append(prefix)
    versions = [version] if version else _versions(tree, prefixes)
    out = PyEnv(norm(names[-1]), version)
    for v in versions:
        for prefix in prefixes:
            for lib in ("lib", "lib64"):
                std = _join(prefix, f"{lib}/python{v}")
                if tree.resolve(posixpath.join(std, "os.py")).path is not None or \
                        tree.resolve(posixpath.join(std, "os.pyc")).path is not None:
                    _add(out.stdlib, std)
                    _add(out.dynload, posixpath.join(std, "lib-dynload"))
                for site in (f"{lib}/python{v}/site-packages", f"{lib}/python{v}/dist-packages",
                             f"local/{lib}/python{v}/dist-packages", f"{lib}/python3/dist-packages"):
                    _add(out.sites, _join(prefix, site))
        _add(out.sites, norm(f"{home}/.local/lib/python{v}/site-packages"))
    for path in env.get("PYTHONPATH", "").split(":"):
        if path.startswith("/"):
            _add(out.sites, norm(path))
    out.dynload = [d for d in out.dynload if tree.is_dir(tree.resolve(d).path or "-")]
    out.sites = [d for d in out.sites if tree.is_dir(tree.resolve(d).path or "-")]
    return out


def _join(prefix: str, rest: str) -> str:
    return norm(posixpath.join("/" + prefix, rest))


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _versions(tree: Tree, prefixes: Sequence[str]) -> list[str]:
    """X.Y of every pythonX.Y directory under the prefixes' lib directories."""
    out: list[str] = []
    for prefix in prefixes:
        for lib in ("lib", "lib64"):
            real = tree.resolve(_join(prefix, lib)).path
            for child in tree.children(real) if real is not None else ():
                m = re.fullmatch(r"python(\d+\.\d+)", child.rpartition("/")[2])
                if m and m.group(1) not in out:
                    out.append(m.group(1))
    return out


class Modules:
    """Module lookup over a search path, as the path-based finder does it: a directory with
    ``__init__`` is a regular package, else module files (extension, source, bytecode), else
    directories without ``__init__`` make a namespace package."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._stems: dict[str, dict[str, list[str]]] = {}
        self._found: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._steps: dict[tuple[tuple[str, ...], str],
                          tuple[Sequence[str], Sequence[str], bool]] = {}

    def stems(self, directory: str) -> dict[str, list[str]]:
        """Module name -> basenames of module files directly in (resolved) ``directory``."""
        hit = self._stems.get(directory)
        if hit is None:
            hit = {}
            for child in self.tree.children(directory):
                base = child.rpartition("/")[2]
                m = _EXT.match(base)
                stem = m.group(1) if m else (base[:-3] if base.endswith(".py") else
                                            base[:-4] if base.endswith(".pyc") else None)
                if stem and stem.isidentifier() and not self.tree.is_dir(child):
                    hit.setdefault(stem, []).append(base)
            self._stems[directory] = hit
        return hit

    def _step(self, dirs: Sequence[str], part: str
              ) -> tuple[Sequence[str], Sequence[str], bool]:
        """Look ``part`` up in ``dirs``: (files to load, directories of the package found,
        whether it is a package). Remembered too: ``from .a import b`` looks ``a`` up
        twice (".a" and ".a.b")."""
        key = (tuple(dirs), part)
        hit = self._steps.get(key)
        if hit is None:
            hit = self._steps[key] = self._look(dirs, part)
        return hit

    def _look(self, dirs: Sequence[str], part: str) -> tuple[Sequence[str], Sequence[str], bool]:
        portions: list[str] = []
        for d in dirs:
            real = self.tree.resolve(d).path
            if real is None or not self.tree.is_dir(real):
                continue
            pkg = posixpath.join(d, part)
            pkg_real = self.tree.resolve(pkg).path
            is_pkg_dir = pkg_real is not None and self.tree.is_dir(pkg_real)
            if is_pkg_dir:
                init = self.stems(pkg_real).get("__init__")  # type: ignore[arg-type]
                if init:
                    return tuple(posixpath.join(pkg, b) for b in init), (pkg,), True
            mods = self.stems(real).get(part)
            if mods:
                return tuple(posixpath.join(d, b) for b in mods), (), False
            if is_pkg_dir:
                portions.append(pkg)
        return (), tuple(portions), bool(portions)

    def find(self, dotted: str, search: Sequence[str]) -> tuple[str, ...]:
        """Files that ``import dotted`` loads (each package's ``__init__``, then the module);
        as far as it gets when a part is missing. Remembered per name and search path: the
        files of an image import the same modules over and over (torch's 6,900 sources
        made 147,000 lookups)."""
        key = (dotted, tuple(search))
        hit = self._found.get(key)
        if hit is not None:
            return hit
        files: list[str] = []
        dirs: Sequence[str] = search
        for part in dotted.split("."):
            found, dirs, is_pkg = self._step(dirs, part)
            files.extend(found)
            if not found and not dirs:
                break
            if not is_pkg:
                break
        self._found[key] = hit = tuple(files)
        return hit

    def find_relative(self, importer: str, dotted: str) -> tuple[str, ...]:
        """Files of a relative import (leading dots) made by the module file ``importer``."""
        level = len(dotted) - len(dotted.lstrip("."))
        base = posixpath.dirname(importer)
        for _ in range(level - 1):
            base = posixpath.dirname(base)
        rest = dotted[level:]
        return self.find(rest, [base]) if rest else ()

    def site_root(self, path: str) -> str:
        """The directory above the outermost package holding ``path``."""
        d = posixpath.dirname(path)
        while d and self.stems(self.tree.resolve(d).path or d).get("__init__"):
            d = posixpath.dirname(d)
        return d


@dataclass
class Dist:
    """One installed distribution: its metadata file (the node that stands for it), name,
    requirements, importable names and installed files (resolved, root-relative)."""

    node: str
    name: str
    requires: tuple[str, ...]
    top_level: tuple[str, ...]
    files: tuple[str, ...]

    def extension_modules(self) -> list[str]:
        """Installed files that the import system can load as extension modules: tagged
        ones (``.cpython-311-x86_64-linux-gnu.so``, ``.abi3.so``) and plain ``NAME.so`` in a
        package directory."""
        inits = {posixpath.dirname(f) for f in self.files
                 if f.rpartition("/")[2] in ("__init__.py", "__init__.pyc")}
        out = []
        for f in self.files:
            base = f.rpartition("/")[2]
            if _EXT.match(base) and (".cpython-" in base or ".abi3." in base or
                                     ".pypy" in base or posixpath.dirname(f) in inits):
                out.append(f)
        return out


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Dists:
    """The distributions installed in a set of site directories (read on first use)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.sites: list[str] = []
        self.by_file: dict[str, Dist] = {}
        self.by_name: dict[str, Dist] = {}
        self.warnings: list[str] = []

    def add_site(self, site: str) -> None:
        """Index the ``*.dist-info`` directories of one site directory."""
        real = self.tree.resolve(site).path
        if real is None or real in self.sites:
            return
        self.sites.append(real)
        for child in self.tree.children(real):
            if child.endswith(".dist-info") and self.tree.is_dir(child):
                self._add(real, child)

    def _add(self, site: str, info: str) -> None:
        facts = {k: self.tree.facts_of(f"{info}/{k}") for k in ("RECORD", "METADATA",
                                                                 "top_level.txt")}
        record, meta, top = facts["RECORD"], facts["METADATA"], facts["top_level.txt"]
        files: list[str] = []
        if isinstance(record, TextFacts):
            if record.error:
                self.warnings.append(f"/{info}/RECORD: {record.error}")
            files = [norm(posixpath.join("/" + site, p)) for p in record.lines]
        name = info.rpartition("/")[2][:-len(".dist-info")].split("-")[0]
        requires: tuple[str, ...] = ()
        if isinstance(meta, TextFacts) and meta.kind == TextKind.METADATA and meta.lines:
            name = meta.lines[0] or name
            requires = meta.lines[1:]
        node = f"{info}/METADATA" if meta is not None else f"{info}/RECORD"
        tops = top.lines if isinstance(top, TextFacts) else tuple(sorted({
            p[len(site) + 1:].split("/")[0].removesuffix(".py") for p in files
            if p.startswith(site + "/") and not p[len(site) + 1:].split("/")[0].endswith(
                (".dist-info", ".data", ".pth")) and ".." not in p}))
        dist = Dist(node, name, requires, tuple(t for t in tops if t.isidentifier()),
                    tuple(files))
        self.by_name.setdefault(canonical(name), dist)
        for f in files:
            self.by_file.setdefault(f, dist)
