"""Reading imports and metadata from bytes: the Python import scanner (checked against
``ast`` on the standard library), JavaScript specifiers, package.json, dist-info files."""

from __future__ import annotations

import ast
import glob
import re
import sysconfig

from hypothesis import given, settings
from hypothesis import strategies as st

from slimmer.fs.closure.facts import Lang, TextKind
from slimmer.fs.closure.sources import js_imports, package_json, python_imports, text_facts


def test_python_import_forms() -> None:
    src = b'''"""doc"""
import os, sys as system
import a.b.c as abc
from . import sibling
from .. import parent_mod
from .pkg.mod import (one,  # comment
    two as deux,
    three)
from x.y import z, \\
    w
from typing import *
if TYPE_CHECKING: import only_typing
try:
    import optional
except ImportError:
    pass
def f():
    import inner; import second
mod = importlib.import_module("dyn.mod")
old = __import__('legacy')
'''
    facts = python_imports(src)
    assert facts.lang == Lang.PYTHON and facts.error is None
    assert set(facts.imports) == {
        "os", "sys", "a.b.c", ".sibling", "..parent_mod", ".pkg.mod", ".pkg.mod.one",
        ".pkg.mod.two", ".pkg.mod.three", "x.y", "x.y.z", "x.y.w", "typing", "only_typing",
        "optional", "inner", "second", "dyn.mod", "legacy"}


def test_python_sources_that_cannot_be_read() -> None:
    assert "NUL" in (python_imports(b"import os\0\0").error or "")
    assert "not valid utf-8" in (python_imports(b"import os\n'\xff\xfe'").error or "")
    latin = b"# -*- coding: latin-1 -*-\nimport os\ns = '\xe9'\n"
    assert python_imports(latin).imports == ("os",)
    assert "unknown source encoding" in (
        python_imports(b"# coding: nosuch\nimport os\n").error or "")
    assert python_imports(b"x = 1\n").imports == ()


def test_python_scanner_finds_every_import_ast_finds_in_the_stdlib() -> None:
    """Over-approximation is fine (it protects more); missing an import is not."""
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(f"{stdlib}/*.py"))[:150]
    assert len(files) > 100
    missed = []
    for path in files:
        data = open(path, "rb").read()
        got = set(python_imports(data).imports)
        for node in ast.walk(ast.parse(data)):
            if isinstance(node, ast.Import):
                missed += [a.name for a in node.names if a.name not in got]
            elif isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                want = [mod] if node.module else []
                want += [mod + ("." if node.module else "") + a.name for a in node.names
                         if a.name != "*"]
                missed += [w for w in want if w not in got]
    assert missed == []


def test_js_specifiers() -> None:
    src = b"""const a = require('./a'), b = require("b/sub");
import c from 'c';
import {d} from "@scope/d";
import 'side-effect';
export * from './re-export.js';
const lazy = await import('lazy');
const t = require(`template`);
const skip = require(`./x/${name}`);
const dyn = require(name);
"""
    facts = js_imports(src)
    assert set(facts.imports) == {"./a", "b/sub", "c", "@scope/d", "side-effect",
                                  "./re-export.js", "lazy", "template"}
    assert "NUL" in (js_imports(b"require('x')\0").error or "")


def _js_reference(data: bytes) -> tuple[str, ...]:
    """The specifiers as the three whole patterns find them, one pass each."""
    found: dict[str, None] = {}
    esm = b"import" in data or b"export" in data
    for rx in (rb"""require\s*\(\s*(['"`])([^'"`\n]{1,1024}?)\1""",
               rb"""import\s*(?:\(\s*)?(['"`])([^'"`\n]{1,1024}?)\1""",
               rb"""from\s*(['"])([^'"\n]{1,1024}?)\1""" if esm else None):
        for m in re.finditer(rx, data) if rx else ():
            spec = m.group(2).decode("utf-8", "surrogateescape")
            if "${" not in spec and spec.strip() == spec:
                found[spec] = None
    return tuple(found)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([
    "require", "quire", "acquire", "re", "import", "mport", "xim", "from", "export", "(", " ",
    "\n", "'", '"', "`", "a", "./b", "${", "}", "q", "m", "i", "r", "e"]), max_size=40))
def test_js_scanner_finds_what_the_whole_patterns_find(tokens: list[str]) -> None:
    """The scanner starts its searches at a rarer letter of each word (sources.py); the
    specifiers, and their order, are those of the plain patterns."""
    data = "".join(tokens).encode()
    assert js_imports(data).imports == _js_reference(data)


def test_a_word_inside_a_near_miss_is_found() -> None:
    # "acquire('x require(')" looks like a require from its q on, but is not one; the
    # require inside it is, and its string ends after the near-miss does.
    data = b"require('a'); acquire('x require(')y'); ximport('z')"
    assert js_imports(data).imports == _js_reference(data) == ("a", ")y", "z")


def test_package_json() -> None:
    pj = package_json(b'''{"name": "p", "main": "lib/index.js",
        "exports": {".": {"import": "./esm/index.mjs", "require": "./lib/index.js"},
                    "./feature/*": "./lib/feature/*.js", "./package.json": "./package.json"},
        "dependencies": {"a": "1"}, "optionalDependencies": {"b": "2"},
        "peerDependencies": {"c": "3"}, "devDependencies": {"d": "4"},
        "scripts": {"start": "node lib/index.js"}}''')
    assert pj.error is None and pj.name == "p" and pj.main == "lib/index.js"
    assert pj.dependencies == ("a", "b", "c")
    assert dict(pj.exports or ()) == {".": ("./esm/index.mjs", "./lib/index.js"),
                                      "./feature/*": ("./lib/feature/*.js",),
                                      "./package.json": ("./package.json",)}
    assert dict(pj.scripts) == {"start": "node lib/index.js"}
    assert package_json(b'{"exports": "./x.js"}').exports == ((".", ("./x.js",)),)
    assert "unparseable package.json" in (package_json(b"{nope").error or "")
    assert package_json(b"[1]").error == "package.json is not an object"


def test_dist_info_files() -> None:
    record = text_facts(TextKind.RECORD, b'numpy/__init__.py,sha256=x,10\n'
                        b'"numpy/odd,name.py",,\n../../../bin/f2py,,\n')
    assert record.lines == ("numpy/__init__.py", "numpy/odd,name.py", "../../../bin/f2py")
    meta = text_facts(TextKind.METADATA, b"Metadata-Version: 2.1\nName: Demo_Pkg\n"
                      b"Requires-Dist: numpy (>=1.20)\nRequires-Dist: rich; extra == 'cli'\n"
                      b"Requires-Dist: colorama; sys_platform == 'win32'\n\n"
                      b"Requires-Dist: in-the-body-not-a-header\n")
    assert meta.lines == ("Demo_Pkg", "numpy", "colorama")
    conf = text_facts(TextKind.CONFIG, b"# comment\ninclude /etc/ld.so.conf.d/*.conf\n\n/opt\n")
    assert conf.lines == ("include /etc/ld.so.conf.d/*.conf", "/opt")
