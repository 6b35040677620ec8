"""Python in the closure, over fake interpreters and site-packages: stdlib extension modules
and start-up modules, imports from the entry script into installed packages, distributions
(RECORD, Requires-Dist, top_level.txt) with their extension modules and what those load, and
what stays the profiles' decision."""

from __future__ import annotations

from slimmer.fs.closure import Need

from support.closureutil import LIBDIR, closure_of, exe, libc_layer
from support.elfbuild import build_elf

PY = "usr/local/lib/python3.11"
SITE = f"{PY}/site-packages"
EXT = ".cpython-311-x86_64-linux-gnu.so"


def _runtime() -> list[tuple]:
    return [
        ("file", "usr/local/bin/python3.11", exe("libpython3.11.so.1.0", "libc.so.6"), 0o755),
        ("symlink", "usr/local/bin/python3", "python3.11"),
        ("file", "usr/local/lib/libpython3.11.so.1.0", build_elf(needed=["libc.so.6"])),
        ("file", "etc/ld.so.conf.d/local.conf", b"/usr/local/lib\n"),
        ("file", f"{PY}/os.py", b"import abc\nimport sys, stat\nimport posixpath as path\n"),
        ("file", f"{PY}/abc.py", b"from _abc import x\n"),
        ("file", f"{PY}/stat.py", b""), ("file", f"{PY}/posixpath.py", b"import genericpath\n"),
        ("file", f"{PY}/genericpath.py", b""), ("file", f"{PY}/site.py", b"import os\n"),
        ("file", f"{PY}/encodings/__init__.py", b"from . import aliases\n"),
        ("file", f"{PY}/encodings/aliases.py", b""),
        ("file", f"{PY}/encodings/cp1252.py", b"import codecs\n"),
        ("file", f"{PY}/codecs.py", b""),
        ("file", f"{PY}/json/__init__.py", b"from .decoder import JSONDecoder\n"),
        ("file", f"{PY}/json/decoder.py", b"import re\n"), ("file", f"{PY}/re.py", b""),
        ("file", f"{PY}/ssl.py", b"import _ssl\n"),
        ("file", f"{PY}/this.py", b""),
        ("file", f"{PY}/lib-dynload/_ssl{EXT}", build_elf(needed=["libssl.so.3"])),
        ("file", f"{PY}/lib-dynload/zlib{EXT}", build_elf(needed=["libz.so.1"])),
        ("file", f"{LIBDIR}/libssl.so.3", build_elf()),
        ("file", f"{LIBDIR}/libz.so.1", build_elf()),
        ("file", "etc/ssl/certs/ca-certificates.crt", b"pem"),
        ("file", f"{PY}/test/test_os.py", b"import unittest\n"),
    ]


def _site() -> list[tuple]:
    numpy_record = "\n".join([
        "numpy/__init__.py,,", "numpy/core/__init__.py,,", f"numpy/core/_multiarray{EXT},,",
        f"numpy/linalg/_umath_linalg{EXT},,", "numpy/linalg/__init__.py,,",
        "numpy.libs/libopenblas-r0.so,,", "numpy/core/include/numpy/arrayobject.h,,",
        "numpy/tests/test_a.py,,", "numpy-1.26.4.dist-info/METADATA,,",
        "numpy-1.26.4.dist-info/RECORD,,"]).encode()
    return [
        ("file", f"{SITE}/numpy/__init__.py", b"from .core import multiarray\n"),
        ("file", f"{SITE}/numpy/core/__init__.py", b"from . import _multiarray\n"),
        ("file", f"{SITE}/numpy/core/_multiarray{EXT}",
         build_elf(needed=["libopenblas-r0.so"], runpath="$ORIGIN/../../numpy.libs")),
        ("file", f"{SITE}/numpy/linalg/__init__.py", b""),
        ("file", f"{SITE}/numpy/linalg/_umath_linalg{EXT}",
         build_elf(needed=["libgfortran-x.so.5"], rpath="$ORIGIN/../../numpy.libs")),
        ("file", f"{SITE}/numpy.libs/libopenblas-r0.so", build_elf()),
        ("file", f"{SITE}/numpy.libs/libgfortran-x.so.5", build_elf()),
        ("file", f"{SITE}/numpy/core/include/numpy/arrayobject.h", b"/* h */"),
        ("file", f"{SITE}/numpy/tests/test_a.py", b"import pytest\n"),
        ("file", f"{SITE}/numpy-1.26.4.dist-info/METADATA",
         b"Name: numpy\nRequires-Dist: helper-dist\nRequires-Dist: pytest; extra == 'test'\n"),
        ("file", f"{SITE}/numpy-1.26.4.dist-info/RECORD", numpy_record),
        ("file", f"{SITE}/helper_pkg/__init__.py", b"import certifi\n"),
        ("file", f"{SITE}/helper_dist-2.0.dist-info/METADATA", b"Name: helper-dist\n"),
        ("file", f"{SITE}/helper_dist-2.0.dist-info/RECORD", b"helper_pkg/__init__.py,,\n"),
        ("file", f"{SITE}/helper_dist-2.0.dist-info/top_level.txt", b"helper_pkg\n"),
        ("file", f"{SITE}/certifi/__init__.py", b"from .core import where\n"),
        ("file", f"{SITE}/certifi/core.py", b""), ("file", f"{SITE}/certifi/cacert.pem", b"pem"),
        ("file", f"{SITE}/pytest/__init__.py", b""),
        ("file", f"{SITE}/distutils-precedence.pth", b"import _distutils_hack\n"),
        ("file", f"{SITE}/_distutils_hack/__init__.py", b""),
        ("file", f"{SITE}/extra.pth", b"/opt/extra\n"),
        ("file", "opt/extra/extramod.py", b""),
    ]


def _app(main: bytes) -> list[tuple]:
    return [("file", "app/main.py", main), ("file", "app/util.py", b"import json\n"),
            ("file", "app/bad.py", b"import os\n\xff\xfe\n"),
            ("file", "app/unused.py", b"import this\n")]


def test_script_imports_into_packages_and_distributions() -> None:
    main = b"import util\nimport numpy\nimport extramod\nimport bad\nfrom helper_pkg import x\n"
    c = closure_of([libc_layer(), _runtime(), _site(), _app(main)],
                   {"Cmd": ["python3", "/app/main.py"], "WorkingDir": "/app"})
    # the interpreter, its library, its start-up and stdlib extension modules
    assert c.explain("usr/local/lib/libpython3.11.so.1.0") == (
        "usr/local/lib/libpython3.11.so.1.0 <- usr/local/bin/python3.11 (DT_NEEDED) <- "
        "usr/local/bin/python3 (symlink) <- Cmd")
    assert c.links[f"{PY}/site.py"].need == Need.STARTUP
    assert c.links[f"{PY}/genericpath.py"].parent == "usr/local/bin/python3.11"
    assert c.links[f"{PY}/encodings/cp1252.py"].need == Need.CODECS
    assert c.links[f"{PY}/lib-dynload/zlib{EXT}"].need == Need.STDLIB
    assert f"{LIBDIR}/libz.so.1" in c and "etc/ssl/certs/ca-certificates.crt" in c
    # the script's imports, into the app directory (sys.path[0]) and the stdlib
    assert c.explain(f"{PY}/re.py") == (
        f"{PY}/re.py <- {PY}/json/decoder.py (import) <- {PY}/json/__init__.py (import) <- "
        "app/util.py (import) <- app/main.py (import) <- Cmd")
    # into an installed distribution: every extension module, and what they load ($ORIGIN)
    assert c.explain(f"{SITE}/numpy.libs/libopenblas-r0.so") == (
        f"{SITE}/numpy.libs/libopenblas-r0.so <- {SITE}/numpy/core/_multiarray{EXT} "
        f"(DT_NEEDED) <- {SITE}/numpy/core/__init__.py (import) <- {SITE}/numpy/__init__.py "
        "(import) <- app/main.py (import) <- Cmd")
    assert c.links[f"{SITE}/numpy/linalg/_umath_linalg{EXT}"].need == Need.EXTENSION
    assert c.links[f"{SITE}/numpy.libs/libgfortran-x.so.5"].need == Need.NEEDED
    assert c.links[f"{SITE}/numpy-1.26.4.dist-info/METADATA"].need == Need.DISTRIBUTION
    # Requires-Dist (not behind an extra), top_level.txt, certifi's bundle
    assert c.links[f"{SITE}/helper_dist-2.0.dist-info/METADATA"].need in (
        Need.REQUIRES, Need.DISTRIBUTION)
    assert f"{SITE}/helper_pkg/__init__.py" in c and f"{SITE}/certifi/cacert.pem" in c
    assert f"{SITE}/pytest/__init__.py" not in c
    # .pth files: import lines run, path lines extend sys.path
    assert c.links[f"{SITE}/_distutils_hack/__init__.py"].parent == \
        f"{SITE}/distutils-precedence.pth"
    assert "opt/extra/extramod.py" in c
    # code that is not loaded stays the profiles' decision
    for path in (f"{SITE}/numpy/tests/test_a.py", f"{SITE}/numpy/core/include/numpy/"
                 "arrayobject.h", f"{PY}/this.py", f"{PY}/test/test_os.py", "app/unused.py"):
        assert path not in c, path
    assert any("/app/bad.py: unparseable Python source (not valid utf-8" in w
               for w in c.warnings)


def test_module_entry_and_inline_code() -> None:
    layer = _app(b"") + [("file", "app/pkg/__init__.py", b""),
                         ("file", "app/pkg/__main__.py", b"from .cli import run\n"),
                         ("file", "app/pkg/cli.py", b"import json\n")]
    c = closure_of([libc_layer(), _runtime(), layer], {
        "Entrypoint": ["python3", "-u", "-m", "pkg"], "WorkingDir": "/app",
        "Healthcheck": {"Test": ["CMD", "python3", "-c", "import ssl; ssl.create_default_context()"]}})
    assert c.explain("app/pkg/cli.py") == (
        "app/pkg/cli.py <- app/pkg/__main__.py (import) <- usr/local/bin/python3.11 "
        "(argument) <- usr/local/bin/python3 (symlink) <- Entrypoint")
    assert f"{PY}/ssl.py" in c and f"{PY}/re.py" in c


def test_venv_and_console_script() -> None:
    venv_site = "opt/venv/lib/python3.11/site-packages"
    layer = [("symlink", "opt/venv/bin/python", "/usr/local/bin/python3.11"),
             ("file", "opt/venv/pyvenv.cfg", b"home = /usr/local/bin\n"),
             ("file", "opt/venv/bin/serve",
              b"#!/opt/venv/bin/python\nfrom server.main import run\nrun()\n", 0o755),
             ("file", f"{venv_site}/server/__init__.py", b""),
             ("file", f"{venv_site}/server/main.py", b"import json\n")]
    c = closure_of([libc_layer(), _runtime(), layer], {
        "Cmd": ["serve"], "Env": ["PATH=/opt/venv/bin:/usr/bin"]})
    assert c.explain(f"{venv_site}/server/main.py") == (
        f"{venv_site}/server/main.py <- opt/venv/bin/serve (import) <- Cmd")
    assert f"{PY}/json/decoder.py" in c and f"{PY}/site.py" in c


def test_remembered_lookups_and_reaches_give_the_closure_computed_afresh() -> None:
    """The walk remembers module lookups (per name and search path, per step) and reached
    paths; computed afresh every time, the closure is the same link for link. Two packages
    have a sibling module of the same name (a relative lookup keyed without its directory
    would mix them up), and modules are reached through a symlinked directory too."""
    from unittest import mock

    from slimmer.fs.closure import walk
    from slimmer.fs.closure.python import Modules

    pkgs = [("file", f"{SITE}/{p}/__init__.py", b"from .common import x\nfrom . import common\n")
            for p in ("alpha", "beta")]
    pkgs += [("file", f"{SITE}/alpha/common.py", b"import json\n"),
             ("file", f"{SITE}/beta/common.py", b"import codecs\nimport numpy\n"),
             ("symlink", "app/lib", f"/{SITE}"),
             ("file", "app/other.py", b"import alpha\nimport beta\nimport json, util\n")]
    main = b"import util\nimport numpy\nimport alpha\nimport beta\nimport other\n"
    layers = [libc_layer(), _runtime(), _site(), _app(main) + pkgs]
    config = {"Cmd": ["python3", "/app/main.py"], "WorkingDir": "/app"}
    remembered = closure_of(layers, config)

    reach, find = walk.Walker.reach, Modules.find

    def afresh_reach(self: walk.Walker, *a: object, **k: object) -> object:
        self._reached.clear()
        return reach(self, *a, **k)  # type: ignore[arg-type]

    def afresh_find(self: Modules, *a: object) -> object:
        self._found.clear()
        self._steps.clear()
        return find(self, *a)  # type: ignore[arg-type]

    with mock.patch.object(walk.Walker, "reach", afresh_reach), \
            mock.patch.object(Modules, "find", afresh_find), \
            mock.patch.object(Modules, "_step", lambda self, d, p: self._look(d, p)):
        afresh = closure_of(layers, config)
    assert f"{SITE}/alpha/common.py" in remembered and f"{SITE}/beta/common.py" in remembered
    assert remembered.links == afresh.links and remembered.warnings == afresh.warnings
