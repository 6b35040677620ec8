"""Reading the imports of Python and JavaScript sources and the small metadata files the
closure follows (package.json, dist-info RECORD/METADATA/top_level.txt, .pth, ld.so.conf,
nsswitch.conf), from their bytes.

Sources are read by a scanner of import statements rather than a full parse: a full
``ast.parse`` of every ``.py`` file of an image costs about 40 times more (measured on the
standard library, README "Static safety floor"). The scanner finds ``import``/``from``
statements at any indentation, parenthesised and backslash-continued name lists, and
``__import__``/``importlib.import_module`` calls with a literal name; an import written inside
a string or a comment counts too, which only ever protects more. A file that is not text is
reported as unparseable.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from slimmer.fs.closure.facts import Lang, PackageJson, SourceFacts, TextFacts, TextKind

# Every pattern starts with a literal, which Python's re engine searches for quickly (a
# pattern anchored with ^ or opening with an alternation is 10-50 times slower here).
_PY_KEYWORD = re.compile(rb"import(?=[ \t(\\])")
_PY_FROM = re.compile(rb"[ \t]*from[ \t]+(\.+[\w.]*|[\w.]+)[ \t]+")
_PY_CALLS = ((re.compile(rb"""__import__\(\s*['"]([\w.]+)['"]"""), b"__import__("),
             (re.compile(rb"""import_module\(\s*['"]([\w.]+)['"]"""), b"import_module("))
_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.M)
# The JavaScript patterns are `require\s*\(\s*(['"`])...`, `import\s*(?:\(\s*)?(['"`])...`
# and `from\s*(['"])...`; the first two are searched from a rarer letter of the word (q, m)
# with the letters before it checked by hand: the engine's scan for a literal prefix stops at
# every occurrence of its first letter, and r and i are among the commonest in source code.
# (word, pattern from the letter on, how many letters of the word come before it)
_JS_PATTERNS = (
    (b"require", re.compile(rb"""quire\s*\(\s*(['"`])([^'"`\n]{1,1024}?)\1"""), 2),
    (b"import", re.compile(rb"""mport\s*(?:\(\s*)?(['"`])([^'"`\n]{1,1024}?)\1"""), 1),
    (b"from", re.compile(rb"""from\s*(['"])([^'"\n]{1,1024}?)\1"""), 0))
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EMPTY = {Lang.PYTHON: SourceFacts(Lang.PYTHON), Lang.JS: SourceFacts(Lang.JS)}


def _text(data: bytes) -> str | None:
    """Why ``data`` is not a source file, or None."""
    if b"\0" in data:
        return "not a text file (NUL bytes)"
    head = data[:512].split(b"\n", 2)
    m = _CODING.match(b"\n".join(head[:2]))
    codec = m.group(1).decode("ascii", "replace") if m else "utf-8"
    try:
        data.decode(codec)
    except LookupError:
        return f"unknown source encoding {codec!r}"
    except UnicodeDecodeError as exc:
        return f"not valid {codec} ({exc.reason} at byte {exc.start})"
    return None


def _names(raw: bytes) -> list[str]:
    """The dotted names of an import list ("a.b as c, d" or "(x,\\n y)"), comments dropped."""
    text = raw.decode("utf-8", "replace")
    text = re.sub(r"#[^\n]*", "", text).replace("\\\n", " ").strip().strip("()")
    out = []
    for item in text.split(","):
        name = item.split(" as ")[0].strip()
        if name and all(p.isidentifier() for p in name.split(".")):
            out.append(name)
    return out


def _statement_rest(data: bytes, i: int) -> bytes:
    """The name list of an import statement whose names start at ``data[i]``: up to the
    closing parenthesis, or to the end of the line (backslash continuations followed), a
    comment or a semicolon."""
    while i < len(data) and data[i] in b" \t":
        i += 1
    if data[i:i + 1] == b"(":
        end = data.find(b")", i)
        return data[i:end + 1 if end >= 0 else len(data)]
    out = bytearray()
    while True:
        end = data.find(b"\n", i)
        line = data[i:end if end >= 0 else len(data)]
        cut = min((k for k in (line.find(b"#"), line.find(b";")) if k >= 0), default=-1)
        if cut >= 0:
            return bytes(out + line[:cut])
        if end >= 0 and line.rstrip(b"\r").endswith(b"\\"):
            out += line.rstrip(b"\r")[:-1] + b" "
            i = end + 1
            continue
        return bytes(out + line)


def python_imports(data: bytes) -> SourceFacts:
    """The modules a Python source imports (see the module docstring)."""
    if b"import" not in data:
        return _EMPTY[Lang.PYTHON]
    error = _text(data)
    if error is not None:
        return SourceFacts(Lang.PYTHON, error=error)
    found: dict[str, None] = {}
    for m in _PY_KEYWORD.finditer(data, data.find(b"import")):
        start = data.rfind(b"\n", 0, m.start()) + 1
        prefix = data[start:m.start()]
        rest = _statement_rest(data, m.end())
        if not prefix.strip(b" \t") or prefix.rstrip().endswith((b":", b";")):
            for name in _names(rest):
                found[name] = None
            continue
        fm = _PY_FROM.fullmatch(prefix)
        if fm is None:
            continue
        mod = fm.group(1).decode("ascii", "replace")
        dots = len(mod) - len(mod.lstrip("."))
        base = mod[dots:]
        if base and not all(p.isidentifier() for p in base.split(".")):
            continue
        if base:
            found[mod] = None
        for name in _names(rest):
            found[mod + ("." if base else "") + name] = None
    for rx, literal in _PY_CALLS:
        if literal in data:
            for m in rx.finditer(data, data.find(literal)):
                found[m.group(1).decode("ascii")] = None
    return SourceFacts(Lang.PYTHON, tuple(found)) if found else _EMPTY[Lang.PYTHON]


def js_imports(data: bytes) -> SourceFacts:
    """The specifiers a JavaScript file requires or imports with a literal string."""
    if b"\0" in data:
        return SourceFacts(Lang.JS, error="not a text file (NUL bytes)")
    found: dict[str, None] = {}
    at_import = data.find(b"import")
    esm = at_import >= 0 or b"export" in data
    for word, rx, back in _JS_PATTERNS:
        if word == b"import":
            pos = at_import
        else:
            pos = data.find(word) if word != b"from" or esm else -1
        if pos < 0:
            continue   # a search for a word that is not there is cheaper than a regex pass
        lead = word[:back]
        pos += back
        while (m := rx.search(data, pos)) is not None:
            start = m.start()
            if back and data[start - back:start] != lead:
                pos = start + 1            # "acquire(": not this word, look on from here
                continue
            spec = m.group(2).decode("utf-8", "surrogateescape")
            if "${" not in spec and spec.strip() == spec:
                found[spec] = None
            pos = m.end()
    return SourceFacts(Lang.JS, tuple(found)) if found else _EMPTY[Lang.JS]


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    return []


def _exports(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    if value is None:
        return None
    if isinstance(value, dict) and any(str(k).startswith(".") for k in value):
        return tuple((str(k), tuple(_leaves(v))) for k, v in value.items()
                     if str(k).startswith("."))
    return ((".", tuple(_leaves(value))),)


def package_json(data: bytes) -> PackageJson:
    """The fields of a package.json that resolution and the dependency walk use."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return PackageJson(error=f"unparseable package.json ({str(exc).splitlines()[0]})")
    if not isinstance(doc, dict):
        return PackageJson(error="package.json is not an object")
    deps: dict[str, None] = {}
    for key in ("dependencies", "optionalDependencies", "peerDependencies"):
        table = doc.get(key)
        if isinstance(table, dict):
            deps.update((str(k), None) for k in table)
    scripts = doc.get("scripts")
    main = doc.get("main")
    name = doc.get("name")
    return PackageJson(
        name=name if isinstance(name, str) else None,
        main=main if isinstance(main, str) else None,
        exports=_exports(doc.get("exports")),
        dependencies=tuple(deps),
        scripts=tuple((str(k), str(v)) for k, v in scripts.items()
                      if isinstance(v, str)) if isinstance(scripts, dict) else ())


def text_facts(kind: TextKind, data: bytes) -> TextFacts:
    """Lines of a small text file, shaped for ``kind`` (see TextFacts)."""
    text = data.decode("utf-8", "replace")
    if kind == TextKind.RECORD:
        try:
            rows = [row[0] for row in csv.reader(io.StringIO(text)) if row and row[0]]
        except csv.Error as exc:
            return TextFacts(kind, error=f"unparseable RECORD ({exc})")
        return TextFacts(kind, tuple(rows))
    if kind == TextKind.METADATA:
        return TextFacts(kind, tuple(_metadata(text)))
    lines = (line.strip() for line in text.splitlines())
    return TextFacts(kind, tuple(line for line in lines if line and not line.startswith("#")))


def _metadata(text: str) -> list[str]:
    """``Name`` first (or ""), then the requirement names without an ``extra`` marker."""
    name = ""
    reqs: list[str] = []
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "name":
            name = value.strip()
        elif key == "requires-dist":
            spec, _, marker = value.partition(";")
            m = _REQ_NAME.match(spec)
            if m and "extra" not in marker:
                reqs.append(m.group(1))
    return [name, *reqs]
