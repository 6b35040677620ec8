"""Scan-time collection: which files the closure inspects, and reading their facts from the
layer stream during the one scan pass (``fs.scan`` calls ``collect`` for every regular file).

Small files are read with the reader's ``head`` (they are buffered anyway); ELF files stream
their data once through ``ElfCapture``, which keeps only what it needs. Nothing is read twice
and no layer is decoded again.
"""

from __future__ import annotations

import posixpath
from enum import StrEnum
from typing import Callable, Protocol

from slimmer.fs.closure.elf import HEAD_BYTES, MAGIC, MAX_HEAD, ElfCapture, ElfError, parse_head
from slimmer.fs.closure.elf import phdr_end as _phdr_end
from slimmer.fs.closure.facts import (
    ElfFacts,
    Facts,
    Lang,
    PackageJson,
    SourceFacts,
    TextFacts,
    TextKind,
)
from slimmer.fs.closure.sources import js_imports, package_json, python_imports, text_facts

#: The most bytes read of one file of each kind (larger ones are noted, not read).
PY_MAX = 2 << 20
JS_MAX = 4 << 20
JSON_MAX = 1 << 20
TEXT_MAX = 16 << 20
CONFIG_MAX = 256 << 10


class Kind(StrEnum):
    """How a file is read."""

    ELF = "elf"
    PYTHON = "python"
    JS = "js"
    PACKAGE = "package.json"
    TEXT = "text"


class DataReader(Protocol):
    """The current tar member's data, as ``codec.tarread.TarReader`` gives it: its head, and
    a watch on all of it as it goes by (whoever consumes it)."""

    def head(self, n: int) -> bytes: ...

    def watch(self, fn: Callable[[bytes | memoryview], object]) -> None: ...


_CONFIG_FILES = frozenset({"etc/ld.so.conf", "etc/nsswitch.conf"})
_DIST_FILES = {"RECORD": TextKind.RECORD, "METADATA": TextKind.METADATA,
               "top_level.txt": TextKind.TOP_LEVEL}


def kind_of(path: str, mode: int, shebang: str | None) -> tuple[Kind, TextKind | None] | None:
    """How the file at ``path`` (root-relative) is read, or None if the closure never
    looks inside it."""
    base = path.rpartition("/")[2]
    if base.endswith(".py"):
        return Kind.PYTHON, None
    if base.endswith((".js", ".mjs", ".cjs")):
        return Kind.JS, None
    if base == "package.json":
        return Kind.PACKAGE, None
    parent = posixpath.dirname(path)
    if base in _DIST_FILES and parent.endswith(".dist-info"):
        return Kind.TEXT, _DIST_FILES[base]
    if base.endswith(".pth"):
        return Kind.TEXT, TextKind.PTH
    if path in _CONFIG_FILES or parent == "etc/ld.so.conf.d" or base == "pyvenv.cfg" or (
            parent == "etc" and base.startswith("ld-musl-") and base.endswith(".path")):
        return Kind.TEXT, TextKind.CONFIG
    if shebang is not None:
        if "python" in shebang:
            return Kind.PYTHON, None
        if "node" in shebang:
            return Kind.JS, None
        return None
    if mode & 0o111 or ".so" in base or base.endswith(".node"):
        return Kind.ELF, None
    return None


def collect(path: str, mode: int, size: int, shebang: str | None,
            reader: DataReader) -> Facts | ElfCapture | None:
    """The facts of one regular file whose data ``reader`` is positioned at, or None. For an
    ELF file, an ``ElfCapture`` watching the data: its ``result()`` once the entry's data has
    gone by (the scanner asks at the next entry)."""
    how = kind_of(path, mode, shebang)
    if how is None or size == 0:
        return None
    kind, text = how
    if kind == Kind.ELF:
        return _elf(size, reader)
    limit = {Kind.PYTHON: PY_MAX, Kind.JS: JS_MAX, Kind.PACKAGE: JSON_MAX}.get(
        kind, CONFIG_MAX if text == TextKind.CONFIG else TEXT_MAX)
    if size > limit:
        note = f"{size} bytes, more than the {limit >> 10} KiB read"
        if kind == Kind.PYTHON:
            return SourceFacts(Lang.PYTHON, error=note)
        if kind == Kind.JS:
            return SourceFacts(Lang.JS, error=note)
        if kind == Kind.PACKAGE:
            return PackageJson(error=note)
        assert text is not None
        return TextFacts(text, error=note)
    data = reader.head(size)
    if kind == Kind.PYTHON:
        return python_imports(data)
    if kind == Kind.JS:
        return js_imports(data)
    if kind == Kind.PACKAGE:
        return package_json(data)
    assert text is not None
    return text_facts(text, data)


def _elf(size: int, reader: DataReader) -> ElfFacts | ElfCapture | None:
    """ELF facts of a file that starts with the ELF magic (None for any other file): at once
    for a malformed head, else a capture that watches the data stream."""
    head = reader.head(min(size, HEAD_BYTES))
    if not head.startswith(MAGIC):
        return None
    need = _phdr_end(head)
    if len(head) < need <= min(size, MAX_HEAD):
        head = reader.head(need)
    try:
        layout = parse_head(head, size)
    except ElfError as exc:
        cls = 64 if len(head) > 4 and head[4] == 2 else 32
        return ElfFacts(cls, 0, error=str(exc))
    capture = ElfCapture(layout)
    if capture.done:
        return capture.result()
    reader.watch(capture.feed)
    return capture
