"""Node in the closure, over fake node_modules trees: the entry file's requires resolved as
Node does, package.json main/exports, dependencies of reachable packages, .node addons with
what they load, and what stays the profiles' decision."""

from __future__ import annotations

from slimmer.fs.closure import Need

from support.closureutil import LIBDIR, closure_of, exe, libc_layer
from support.elfbuild import build_elf

NM = "usr/src/app/node_modules"


def _image() -> list[list[tuple]]:
    node = [("file", "usr/local/bin/node", exe("libstdc++.so.6", "libc.so.6"), 0o755),
            ("file", f"{LIBDIR}/libstdc++.so.6", build_elf()),
            ("file", "usr/local/bin/npm", b"#!/usr/bin/env node\nrequire('../lib/npm')\n",
             0o755),
            ("file", "usr/bin/env", exe("libc.so.6"), 0o755),
            ("file", "usr/local/lib/npm/index.js", b"")]
    app = [
        ("file", "usr/src/app/package.json",
         b'{"name": "app", "main": "server.js", "dependencies": {"ms": "2"},'
         b' "scripts": {"start": "node --require ./tracing server"}}'),
        ("file", "usr/src/app/tracing.js", b""),
        ("file", "usr/src/app/server.js",
         b"const e = require('express');\nconst a = require('./lib/a');\n"
         b"import('esm-only');\nconst https = require('node:https');\n"),
        ("file", "usr/src/app/lib/a.js", b"module.exports = require('./b.json')\n"),
        ("file", "usr/src/app/lib/b.json", b"{}"),
        ("file", f"{NM}/express/package.json",
         b'{"name": "express", "main": "./lib/express", "dependencies": {"debug": "*"}}'),
        ("file", f"{NM}/express/lib/express.js", b"require('./router')\n"),
        ("file", f"{NM}/express/lib/router/index.js", b""),
        ("file", f"{NM}/express/test/app.js", b"require('mocha')\n"),
        ("file", f"{NM}/express/History.md", b"# history"),
        ("file", f"{NM}/express/build/Release/native.node",
         build_elf(needed=["libhelper.so"], runpath="$ORIGIN/../../deps")),
        ("file", f"{NM}/express/deps/libhelper.so", build_elf()),
        ("file", f"{NM}/express/node_modules/nested/package.json", b'{"main": "i.js"}'),
        ("file", f"{NM}/express/node_modules/nested/build/x.node", build_elf()),
        ("file", f"{NM}/debug/package.json", b'{"name": "debug"}'),
        ("file", f"{NM}/debug/index.js", b"module.exports = require('ms')\n"),
        ("file", f"{NM}/ms/package.json", b'{"name": "ms", "main": "index"}'),
        ("file", f"{NM}/ms/index.js", b""),
        ("file", f"{NM}/esm-only/package.json",
         b'{"name": "esm-only", "exports": {".": {"import": "./dist/index.mjs"},'
         b' "./extra": "./dist/extra.mjs"}}'),
        ("file", f"{NM}/esm-only/dist/index.mjs", b"import x from 'esm-only/extra'\n"),
        ("file", f"{NM}/esm-only/dist/extra.mjs", b""),
        ("file", f"{NM}/esm-only/dist/unused.mjs", b""),
        ("file", f"{NM}/broken/package.json", b"{not json"),
        ("file", "etc/ssl/certs/ca-certificates.crt", b"pem"),
    ]
    return [libc_layer(), node, app]


def test_requires_packages_dependencies_and_addons() -> None:
    c = closure_of(_image(), {"Cmd": ["node", "server.js"], "WorkingDir": "/usr/src/app",
                              "Env": ["PATH=/usr/local/bin:/usr/bin"]})
    assert c.explain(f"{NM}/express/lib/router/index.js") == (
        f"{NM}/express/lib/router/index.js <- {NM}/express/lib/express.js (require) <- "
        "usr/src/app/server.js (require) <- Cmd")
    assert "usr/src/app/lib/b.json" in c
    # an addon of a reachable package, and what it loads through $ORIGIN
    assert c.explain(f"{NM}/express/deps/libhelper.so") == (
        f"{NM}/express/deps/libhelper.so <- {NM}/express/build/Release/native.node "
        f"(DT_NEEDED) <- {NM}/express/package.json (addon) <- usr/src/app/server.js "
        "(package.json) <- Cmd")
    # package.json dependencies, also of the app's own package.json
    assert c.links[f"{NM}/debug/package.json"].need == Need.DEPENDENCY
    assert c.links[f"{NM}/debug/index.js"].need == Need.ENTRY
    assert f"{NM}/ms/index.js" in c
    # exports maps, dynamic import() and a self-reference through exports
    assert f"{NM}/esm-only/dist/index.mjs" in c and f"{NM}/esm-only/dist/extra.mjs" in c
    assert f"{NM}/esm-only/dist/unused.mjs" not in c
    # node:https reads CA certificates
    assert "etc/ssl/certs/ca-certificates.crt" in c
    # not loaded: tests, docs, a nested package nothing requires
    for path in (f"{NM}/express/test/app.js", f"{NM}/express/History.md",
                 f"{NM}/express/node_modules/nested/build/x.node", f"{NM}/broken/package.json"):
        assert path not in c, path


def test_npm_start_runs_the_package_script() -> None:
    c = closure_of(_image(), {"Cmd": ["npm", "start"], "WorkingDir": "/usr/src/app",
                              "Env": ["PATH=/usr/local/bin:/usr/bin"]})
    assert c.links["usr/src/app/package.json"].need == Need.SCRIPT
    # node was first reached through npm's shebang, so that is the chain its --require has
    assert c.explain("usr/src/app/tracing.js") == (
        "usr/src/app/tracing.js <- usr/local/bin/node (require) <- usr/local/bin/npm "
        "(shebang) <- Cmd")
    assert c.links["usr/src/app/server.js"].need == Need.ARGUMENT   # "server": .js added
    assert f"{NM}/express/lib/express.js" in c and "usr/local/lib/npm/index.js" in c


def test_unparseable_package_json_is_a_warning() -> None:
    layers = _image()
    layers[2].append(("file", "usr/src/app/uses-broken.js", b"require('broken')\n"))
    c = closure_of(layers, {"Cmd": ["node", "uses-broken.js"], "WorkingDir": "/usr/src/app"})
    assert any(f"/{NM}/broken/package.json: unparseable package.json" in w for w in c.warnings)
