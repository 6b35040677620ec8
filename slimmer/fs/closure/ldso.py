"""Where the dynamic linker looks for a DT_NEEDED name, as glibc's ld.so does (and musl's,
which searches a subset): DT_RPATH of the object and of the objects that loaded it (unless
the object has DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, the directories of /etc/ld.so.conf
and its includes (what ld.so.cache holds), then the default directories. ``$ORIGIN``,
``$LIB`` and ``$PLATFORM`` are expanded."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from typing import Iterable, Sequence

from slimmer.fs.closure.facts import ElfFacts, TextFacts
from slimmer.fs.closure.tree import Tree, norm

#: e_machine -> Debian multiarch triplet and $PLATFORM
_TRIPLETS = {62: ("x86_64-linux-gnu", "x86_64"), 183: ("aarch64-linux-gnu", "aarch64"),
             3: ("i386-linux-gnu", "i686"), 40: ("arm-linux-gnueabihf", "v7l"),
             21: ("powerpc64le-linux-gnu", "powerpc64le"), 22: ("s390x-linux-gnu", "s390x"),
             243: ("riscv64-linux-gnu", "riscv64"), 8: ("mips64el-linux-gnuabi64", "mips64")}
_TOKEN = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM))")
CONFIG = "etc/ld.so.conf"
CACHE = "etc/ld.so.cache"


def default_dirs(elf: ElfFacts) -> list[str]:
    """The linker's built-in directories for this class and machine (glibc's, Debian's
    multiarch ones and musl's /usr/local/lib, in that order)."""
    triplet = _TRIPLETS.get(elf.machine, ("", ""))[0]
    dirs = [f"lib/{triplet}", f"usr/lib/{triplet}"] if triplet else []
    dirs += ["lib64", "usr/lib64"] if elf.elf_class == 64 else ["lib32", "usr/lib32"]
    return dirs + ["lib", "usr/lib", "usr/local/lib"]


def expand(entry: str, origins: Iterable[str], elf: ElfFacts) -> list[str]:
    """Root-relative directories one DT_RPATH/DT_RUNPATH entry stands for (every origin the
    object was loaded from; every value ``$LIB`` may have)."""
    triplet, platform = _TRIPLETS.get(elf.machine, ("", ""))
    libs = (["lib64", f"lib/{triplet}", "lib"] if elf.elf_class == 64 else
            ["lib32", f"lib/{triplet}", "lib"]) if triplet else ["lib"]
    out: list[str] = []
    for origin in origins:
        values = {"ORIGIN": ["/" + origin], "PLATFORM": [platform or "unknown"], "LIB": libs}
        texts = [entry]
        for _ in range(4):   # a few tokens per entry at most
            nxt = []
            for text in texts:
                m = _TOKEN.search(text)
                if m is None:
                    nxt.append(text)
                    continue
                name = m.group(1) or m.group(2)
                nxt.extend(text[:m.start()] + v + text[m.end():] for v in values[name])
            texts = nxt
        for text in texts:
            if "$" not in text and text.startswith("/"):
                d = norm(text)
                if d not in out:
                    out.append(d)
    return out


def config_dirs(tree: Tree) -> tuple[list[str], list[str], list[str]]:
    """The directories named by /etc/ld.so.conf (following ``include`` globs) and by musl's
    /etc/ld-musl-*.path; returns (directories, files read, warnings)."""
    dirs: list[str] = []
    files: list[str] = []
    warnings: list[str] = []
    todo = [CONFIG]
    seen: set[str] = set()
    while todo:
        path = todo.pop(0)
        real = tree.resolve(path).path
        if real is None or real in seen:
            continue
        seen.add(real)
        facts = tree.facts_of(real)
        if not isinstance(facts, TextFacts):
            continue
        files.append(path)
        if facts.error:
            warnings.append(f"/{path}: {facts.error}")
        for line in facts.lines:
            if line.startswith("include"):
                pattern = line[len("include"):].strip()
                base = "/" + posixpath.dirname(path)
                todo.extend(_glob(tree, posixpath.join(base, pattern)))
            elif not line.startswith("hwcap"):
                dirs.extend(d for d in (norm(x.split("=")[0]) for x in re.split(r"[\s:,]+", line)
                                        if x.startswith("/")) if d not in dirs)
    for path in tree.children("etc"):
        base = path.rpartition("/")[2]
        if base.startswith("ld-musl-") and base.endswith(".path"):
            facts = tree.facts_of(path)
            if isinstance(facts, TextFacts):
                files.append(path)
                for line in facts.lines:
                    dirs.extend(norm(x) for x in line.split(":") if x.startswith("/"))
    return dirs, files, warnings


def _glob(tree: Tree, pattern: str) -> list[str]:
    """Paths matching an ld.so.conf include pattern (globs in the last component only)."""
    parent, _, base = norm(pattern).rpartition("/")
    real = tree.resolve(parent).path
    if real is None:
        return []
    return [c for c in tree.children(real) if fnmatch.fnmatchcase(c.rpartition("/")[2], base)]


def search_dirs(elf: ElfFacts, origins: Sequence[str], inherited_rpath: Sequence[str],
                ld_library_path: Sequence[str], conf: Sequence[str]) -> list[str]:
    """Directories to try, in order, for the DT_NEEDED entries of ``elf`` (loaded from the
    directories ``origins``; ``inherited_rpath``: DT_RPATH directories of its loaders)."""
    out: list[str] = []

    def add(dirs: Iterable[str]) -> None:
        for d in dirs:
            if d not in out:
                out.append(d)

    if not elf.runpath:
        for entry in elf.rpath:
            add(expand(entry, origins, elf))
        add(inherited_rpath)
    add(ld_library_path)
    for entry in elf.runpath:
        add(expand(entry, origins, elf))
    if not elf.nodeflib:
        add(conf)
        add(default_dirs(elf))
    return out


def compatible(a: ElfFacts, b: ElfFacts) -> bool:
    """Whether the linker would load ``b`` for ``a`` (same class and machine)."""
    return a.elf_class == b.elf_class and (a.machine == b.machine or not a.machine or
                                           not b.machine)
