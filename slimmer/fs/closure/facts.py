"""What the one-pass scan records about the files the closure inspects: ELF dynamic
sections, the imports of Python and JavaScript sources, package.json, dist-info files and
small configuration files. Plain frozen data, kept in ``LayerIndex.facts`` by entry ordinal."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class ElfFacts:
    """The dynamic-linking facts of one ELF file; ``error`` says why they are incomplete."""

    elf_class: int                        # 32 or 64
    machine: int                          # e_machine
    interp: str | None = None             # PT_INTERP
    needed: tuple[str, ...] = ()          # DT_NEEDED, in order
    rpath: tuple[str, ...] = ()           # DT_RPATH entries (unexpanded)
    runpath: tuple[str, ...] = ()         # DT_RUNPATH entries (unexpanded)
    soname: str | None = None
    nodeflib: bool = False                # DF_1_NODEFLIB: no default directories
    error: str | None = None
    partial: bool = False                 # ``error`` is a limit of the streaming read, not damage


class Lang(StrEnum):
    """The language of a source file whose imports were read."""

    PYTHON = "python"
    JS = "js"


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """The modules a source file imports. Python: dotted names, relative ones with their
    leading dots (``from .a import b`` gives ".a" and ".a.b"); JavaScript: the specifiers of
    ``require``/``import`` with a literal string."""

    lang: Lang
    imports: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PackageJson:
    """What Node's resolution and the dependency walk need from one package.json."""

    name: str | None = None
    main: str | None = None
    #: "exports" flattened: (subpath key such as "." or "./feature/*", target paths)
    exports: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    dependencies: tuple[str, ...] = ()    # dependencies, optional and peer dependencies
    scripts: tuple[tuple[str, str], ...] = ()
    error: str | None = None


class TextKind(StrEnum):
    """Small text files read whole, as lines."""

    RECORD = "RECORD"                 # *.dist-info/RECORD: installed paths
    METADATA = "METADATA"             # *.dist-info/METADATA: Name and Requires-Dist
    TOP_LEVEL = "top_level.txt"       # *.dist-info/top_level.txt
    PTH = ".pth"                      # site-packages *.pth
    CONFIG = "config"                 # ld.so.conf(.d), ld-musl-*.path, nsswitch.conf, pyvenv.cfg


@dataclass(frozen=True, slots=True)
class TextFacts:
    """Lines of a small text file (RECORD: the paths; METADATA: ``Name`` first, then one
    requirement name per line, those behind an ``extra`` marker left out)."""

    kind: TextKind
    lines: tuple[str, ...] = ()
    error: str | None = None


Facts = ElfFacts | SourceFacts | PackageJson | TextFacts
