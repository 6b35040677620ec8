"""The static safety floor on images that really run: a C program, Python with an extension
module and Node with an addon, made of this machine's binaries and code compiled here. Strip
globs and profiles name libraries their binaries, an extension module (through $ORIGIN) and an
addon need; the slimmed images still run (chroot into the extracted result), the report names
every override with its chain, and what the rules name but nothing needs is still removed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import slimmer
from slimmer.options import SlimOptions

from support.hostroot import RootSpec, compile_c, missing, run_in, write_tree
from support.memimage import MemSink, MemSource, final_fs, make_tar

pytestmark = pytest.mark.integration
MULTIARCH = "usr/lib/x86_64-linux-gnu"


def _slim(root: RootSpec, config: dict[str, Any], options: SlimOptions,
          out: Path) -> tuple[Any, dict[str, tuple]]:
    """Slim a one-layer image of ``root`` and extract the result under ``out``."""
    sink = MemSink()
    report = slimmer.slim(MemSource([make_tar(root.specs)], config, compress=False), sink,
                          options)
    fs = final_fs(sink.layer_tars())
    write_tree(fs, out)
    return report, fs


def _chains(report: Any) -> dict[str, str]:
    return {o["path"]: " <- ".join(o["chain"]) for o in report.images[0].overrides}


@pytest.mark.skipif(missing("gcc", "ldd") is not None, reason=str(missing("gcc", "ldd")))
def test_c_program_keeps_its_libraries(tmp_path: Path) -> None:
    root = RootSpec()
    root.binary("/bin/true")                 # libc and the dynamic linker, as the host has them
    root.binary(f"/{MULTIARCH}/libz.so.1")   # a library nothing in the image needs
    lib = compile_c(tmp_path, "libgreet.so", '#include <stdio.h>\n'
                    'void greet(void) { puts("hello from libgreet"); }\n',
                    "-shared", "-fPIC", "-Wl,-soname,libgreet.so")
    app = compile_c(tmp_path, "app", "void greet(void);\nint main(void) { greet(); return 0; }\n",
                    "-L.", "-lgreet", "-Wl,-rpath,$ORIGIN/../lib")
    root.file("opt/app/lib/libgreet.so", lib, 0o755)
    root.file("opt/app/lib/libold.so", lib, 0o755)
    root.file("opt/app/bin/app", app, 0o755)
    report, fs = _slim(root, {"Entrypoint": ["/opt/app/bin/app"]}, SlimOptions(
        profiles=("none",), strip=(f"/{MULTIARCH}/*", "/opt/app/lib/*"), compression="none"),
        tmp_path / "root")
    result = run_in(tmp_path / "root", ["/opt/app/bin/app"])
    assert result.returncode == 0 and result.stdout == "hello from libgreet\n", result.stderr
    chains = _chains(report)
    assert chains["opt/app/lib/libgreet.so"] == \
        "opt/app/lib/libgreet.so <- opt/app/bin/app (DT_NEEDED) <- Entrypoint"
    assert chains[f"{MULTIARCH}/libc.so.6"].endswith("opt/app/bin/app (DT_NEEDED) <- Entrypoint")
    assert "PT_INTERP" in chains[f"{MULTIARCH}/ld-linux-x86-64.so.2"]
    removed = {r["path"] for r in report.images[0].removed}
    assert "opt/app/lib/libold.so" in removed and "opt/app/lib/libold.so" not in fs
    assert any(p.startswith(f"{MULTIARCH}/libz.so") for p in removed)
    # the same rules without the floor (--no-protect everything) break the program
    report, _ = _slim(root, {"Entrypoint": ["/opt/app/bin/app"]}, SlimOptions(
        profiles=("none",), strip=(f"/{MULTIARCH}/*", "/opt/app/lib/*"), no_protect=("/**",),
        compression="none"), tmp_path / "broken")
    assert run_in(tmp_path / "broken", ["/opt/app/bin/app"]).returncode != 0
    assert any(w.startswith("--no-protect /**: removing ") for w in report.warnings)


def _host_python() -> str | None:
    if missing("gcc", "ldd") or not Path("/usr/bin/python3").exists():
        return missing("gcc", "ldd") or "Debian's python3 is installed by scripts/setup"
    out = subprocess.run(["/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['include'])"], capture_output=True, text=True).stdout.strip()
    return None if Path(out, "Python.h").exists() else "python3-dev is installed by scripts/setup"


@pytest.mark.skipif(_host_python() is not None, reason=str(_host_python()))
def test_python_extension_module_and_its_origin_library(tmp_path: Path) -> None:
    py = subprocess.run(["/usr/bin/python3", "-c", "import sys, sysconfig, json; print(json.dumps("
                         "[sys.executable, sysconfig.get_paths()['include'], sysconfig.get_paths()"
                         "['stdlib'], sysconfig.get_config_var('EXT_SUFFIX'), "
                         "'%d.%d' % sys.version_info[:2]]))"],
                        capture_output=True, text=True, check=True)
    exe, include, stdlib, suffix, version = json.loads(py.stdout)
    loaded = subprocess.run([exe, "-c", "import json, sys; print('\\n'.join(m.__file__ for m in "
                             "list(sys.modules.values()) if getattr(m, '__file__', None)))"],
                            capture_output=True, text=True, check=True).stdout.split()
    root = RootSpec()
    root.binary(exe)
    for path in loaded:   # the stdlib files start-up and json load, as regular files
        if path.startswith(stdlib + "/"):
            root.host(path, at=path) if not path.endswith(".so") else root.binary(path)
    root.host(f"{stdlib}/this.py", at=f"{stdlib}/this.py")          # nothing imports it
    site = f"/usr/local/lib/python{version}/dist-packages"
    libfm = compile_c(tmp_path, "libfm.so", "int fm_add(int a, int b) { return a + b; }\n",
                      "-shared", "-fPIC", "-Wl,-soname,libfm.so")
    (tmp_path / "fastmath.libs").mkdir()
    (tmp_path / "fastmath.libs/libfm.so").write_bytes(libfm)
    ext = compile_c(tmp_path, "core.so", """#define PY_SSIZE_T_CLEAN
#include <Python.h>
int fm_add(int, int);
static PyObject *add(PyObject *self, PyObject *args) {
    int a, b;
    if (!PyArg_ParseTuple(args, "ii", &a, &b)) return NULL;
    return PyLong_FromLong(fm_add(a, b));
}
static PyMethodDef methods[] = {{"add", add, METH_VARARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, methods};
PyMODINIT_FUNC PyInit__core(void) { return PyModule_Create(&mod); }
""", "-shared", "-fPIC", f"-I{include}", "-Lfastmath.libs", "-lfm",
        "-Wl,-rpath,$ORIGIN/../fastmath.libs")
    root.file(f"{site}/fastmath/__init__.py", "from ._core import add\n")
    root.file(f"{site}/fastmath/_core{suffix}", ext, 0o755)
    root.file(f"{site}/fastmath.libs/libfm.so", libfm, 0o755)
    root.file(f"{site}/fastmath/tests/test_core.py", "import fastmath\n")
    root.file(f"{site}/fastmath-1.0.dist-info/METADATA", "Name: fastmath\nVersion: 1.0\n")
    root.file(f"{site}/fastmath-1.0.dist-info/RECORD", "\n".join([
        "fastmath/__init__.py,,", f"fastmath/_core{suffix},,", "fastmath.libs/libfm.so,,",
        "fastmath/tests/test_core.py,,", "fastmath-1.0.dist-info/METADATA,,",
        "fastmath-1.0.dist-info/RECORD,,"]))
    root.file("app/main.py", "import json\nimport fastmath\n"
                             "print(json.dumps({'sum': fastmath.add(2, 3)}))\n")
    report, fs = _slim(root, {"Cmd": ["python3", "/app/main.py"], "WorkingDir": "/app"},
                       SlimOptions(profiles=("tests",), strip=(f"/{MULTIARCH}/*", f"{stdlib}/**",
                                                               "fastmath.libs/*"),
                                   compression="none"), tmp_path / "root")
    result = run_in(tmp_path / "root", ["python3", "/app/main.py"])
    assert result.returncode == 0 and result.stdout == '{"sum": 5}\n', result.stderr
    chains = _chains(report)
    site_rel = site.lstrip("/")
    assert chains[f"{site_rel}/fastmath.libs/libfm.so"] == (
        f"{site_rel}/fastmath.libs/libfm.so <- {site_rel}/fastmath/_core{suffix} (DT_NEEDED) "
        f"<- {site_rel}/fastmath/__init__.py (import) <- app/main.py (import) <- Cmd")
    libz = next(p for p in chains if p.startswith(f"{MULTIARCH}/libz.so"))
    real = os.path.realpath(exe).lstrip("/")
    assert chains[libz].endswith(f"{real} (DT_NEEDED) <- usr/bin/python3 (symlink) <- Cmd")
    assert f"{stdlib.lstrip('/')}/json/decoder.py" in chains
    removed = {r["path"]: r["rule"] for r in report.images[0].removed}
    assert removed[f"{site_rel}/fastmath/tests/test_core.py"] == "tests.python-packages"
    assert removed[f"{stdlib.lstrip('/')}/this.py"] == "user.strip.2"


@pytest.mark.skipif(missing("gcc", "ldd", "node") is not None,
                    reason=str(missing("gcc", "ldd", "node")))
def test_node_addon_and_its_library(tmp_path: Path) -> None:
    import shutil
    node = str(Path(shutil.which("node") or "node").resolve())
    root = RootSpec()
    root.binary(node)
    root.add(("symlink", "usr/local/bin/node", node))
    helper = compile_c(tmp_path, "libgreeting.so",
                       'const char *greeting(void) { return "hello from an addon"; }\n',
                       "-shared", "-fPIC", "-Wl,-soname,libgreeting.so")
    addon = compile_c(tmp_path, "greet.node", """#include <stddef.h>
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
int napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
int napi_set_named_property(napi_env, napi_value, const char *, napi_value);
const char *greeting(void);
napi_value napi_register_module_v1(napi_env env, napi_value exports) {
    napi_value s;
    napi_create_string_utf8(env, greeting(), (size_t)-1, &s);
    napi_set_named_property(env, exports, "greeting", s);
    return exports;
}
""", "-shared", "-fPIC", f"-L{tmp_path}", "-lgreeting", "-Wl,-rpath,$ORIGIN/../../lib")
    nm = "usr/src/app/node_modules"
    root.file(f"{nm}/greet/package.json", '{"name": "greet", "main": "index.js"}')
    # the addon is loaded through a computed path, as the `bindings` package does
    root.file(f"{nm}/greet/index.js", "const path = require('path');\nmodule.exports = require("
                                      "path.join(__dirname, 'build', 'Release', 'greet.node'));\n")
    root.file(f"{nm}/greet/build/Release/greet.node", addon, 0o755)
    root.file(f"{nm}/greet/lib/libgreeting.so", helper, 0o755)
    root.file(f"{nm}/greet/test/greet.js", "require('..')\n")
    root.file(f"{nm}/unused/package.json", '{"name": "unused"}')
    root.file(f"{nm}/unused/build/Release/unused.node", addon, 0o755)
    root.file("usr/src/app/package.json", '{"name": "app", "dependencies": {"greet": "1"}}')
    root.file("usr/src/app/server.js", "console.log(require('greet').greeting);\n")
    report, fs = _slim(root, {"Cmd": ["node", "server.js"], "WorkingDir": "/usr/src/app"},
                       SlimOptions(profiles=("tests",), strip=(
                           f"/{MULTIARCH}/*", "*.node", f"/{nm}/*/lib/*"), compression="none"),
                       tmp_path / "root")
    result = run_in(tmp_path / "root", ["node", "/usr/src/app/server.js"])
    assert result.returncode == 0 and result.stdout == "hello from an addon\n", result.stderr
    chains = _chains(report)
    assert chains[f"{nm}/greet/lib/libgreeting.so"] == (
        f"{nm}/greet/lib/libgreeting.so <- {nm}/greet/build/Release/greet.node (DT_NEEDED) <- "
        f"{nm}/greet/package.json (addon) <- usr/src/app/server.js (package.json) <- Cmd")
    assert any(p.startswith(f"{MULTIARCH}/libstdc++") for p in chains)
    removed = {r["path"]: r["rule"] for r in report.images[0].removed}
    assert removed[f"{nm}/greet/test/greet.js"] == "tests.node-modules"
    assert removed[f"{nm}/unused/build/Release/unused.node"] == "user.strip.2"
