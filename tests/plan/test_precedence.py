"""Precedence of the closure in the plan: it wins over profiles and --strip globs (the
override names the chain), --no-protect wins over it (recorded, for a warning), what rules
name but the image does not need is still removed, and --why explains each case."""

from __future__ import annotations

import dataclasses

from slimmer.plan.model import OverrideKind, PlanOptions
from slimmer.profiles import Matcher

from support.closureutil import LIBDIR, exe, libc_layer
from support.elfbuild import build_elf
from support.memimage import final_fs, make_tar
from support.slimrun import run

GZIP = PlanOptions(compression="gzip")


def test_entrypoint_interpreter_and_symlinks_are_kept() -> None:
    tars = [make_tar([("dir", "usr"), ("dir", "usr/bin"), ("symlink", "bin", "usr/bin"),
                      ("file", "usr/bin/python3.11", b"\x7fELF", 0o755),
                      ("symlink", "usr/bin/python3", "python3.11"),
                      ("file", "usr/bin/env", b"\x7fELF", 0o755),
                      ("dir", "app"), ("file", "app/run", b"#!/usr/bin/env python3\nprint(1)\n",
                                       0o755),
                      ("file", "usr/bin/other", b"x", 0o755)])]
    matcher = Matcher([], strip_globs=["/usr/bin/**", "/app/**"])
    sink, plan = run(tars, GZIP, matcher, config={"Entrypoint": ["/app/run"], "Env": ["PATH=/bin"]})
    fs = final_fs(sink.layer_tars())
    for kept in ("app/run", "usr/bin/env", "usr/bin/python3", "usr/bin/python3.11"):
        assert kept in fs, kept
    assert "usr/bin/other" not in fs
    reasons = {o.path: o.reason for o in plan.overrides}
    assert reasons["usr/bin/python3.11"] == (
        "needed: usr/bin/python3.11 <- usr/bin/python3 (symlink) <- app/run (shebang) <- "
        "Entrypoint")
    assert plan.closure.explain("bin") == "bin <- app/run (shebang) <- Entrypoint"
    # "usr/bin/python3.11" is only 4 bytes of ELF magic: malformed, said once, never fatal
    assert any("/usr/bin/python3.11: malformed ELF" in w for w in plan.warnings)


def test_cmd_through_path_and_shell_words() -> None:
    tars = [make_tar([("file", "usr/local/bin/server", b"bin", 0o755),
                      ("file", "opt/start.sh", b"#!/bin/sh\n", 0o755),
                      ("file", "bin/sh", b"sh", 0o755)])]
    matcher = Matcher([], strip_globs=["/usr/local/bin/*", "/opt/*", "/bin/*"])
    sink, _ = run(tars, GZIP, matcher, config={"Cmd": ["/bin/sh", "-c", "/opt/start.sh && server"]})
    fs = final_fs(sink.layer_tars())
    assert {"bin/sh", "opt/start.sh", "usr/local/bin/server"} <= set(fs)


def _libs_image() -> list[bytes]:
    app = [("file", "usr/bin/app", exe("libz.so.1", "libc.so.6"), 0o755),
           ("file", f"{LIBDIR}/libz.so.1.2.13", build_elf(needed=["libc.so.6"])),
           ("symlink", f"{LIBDIR}/libz.so.1", "libz.so.1.2.13"),
           ("file", f"{LIBDIR}/libzstd.so.1", build_elf()),
           ("file", f"{LIBDIR}/libc.a", b"!<arch>\n")]
    return [make_tar(libc_layer()), make_tar(app)]


def test_closure_wins_over_strip_globs_and_unneeded_matches_still_go() -> None:
    matcher = Matcher([], strip_globs=[f"/{LIBDIR}/lib*"])
    sink, plan = run(_libs_image(), GZIP, matcher, config={"Cmd": ["/usr/bin/app"]})
    fs = final_fs(sink.layer_tars())
    for path in ("libz.so.1.2.13", "libz.so.1", "libc.so.6", "ld-linux-x86-64.so.2",
                 "libnss_files.so.2"):
        assert f"{LIBDIR}/{path}" in fs, path
    assert f"{LIBDIR}/libzstd.so.1" not in fs and f"{LIBDIR}/libc.a" not in fs
    over = {o.path: o for o in plan.overrides}
    libz = over[f"{LIBDIR}/libz.so.1.2.13"]
    assert libz.kind == OverrideKind.PROTECTED and libz.rule == "user.strip.1"
    assert libz.chain == (f"{LIBDIR}/libz.so.1.2.13", f"{LIBDIR}/libz.so.1 (symlink)",
                          "usr/bin/app (DT_NEEDED)", "Cmd")
    assert {r.path for r in plan.removed} == {f"{LIBDIR}/libzstd.so.1", f"{LIBDIR}/libc.a"}
    assert plan.forced == [] and plan.warnings == []


def test_no_protect_forces_the_removal_and_says_so() -> None:
    matcher = Matcher([], strip_globs=[f"/{LIBDIR}/lib*"])
    opts = dataclasses.replace(GZIP, no_protect=(f"/{LIBDIR}/libz*",))
    sink, plan = run(_libs_image(), opts, matcher, config={"Cmd": ["/usr/bin/app"]})
    fs = final_fs(sink.layer_tars())
    assert f"{LIBDIR}/libz.so.1.2.13" not in fs and f"{LIBDIR}/libz.so.1" not in fs
    assert f"{LIBDIR}/libc.so.6" in fs
    forced = {f.path: f for f in plan.forced}
    assert set(forced) == {f"{LIBDIR}/libz.so.1", f"{LIBDIR}/libz.so.1.2.13"}
    assert forced[f"{LIBDIR}/libz.so.1"].pattern == f"/{LIBDIR}/libz*"
    assert forced[f"{LIBDIR}/libz.so.1"].chain[-2:] == ("usr/bin/app (DT_NEEDED)", "Cmd")


def test_why_explains_removed_protected_kept_and_absent() -> None:
    matcher = Matcher([], strip_globs=[f"/{LIBDIR}/lib*", "/etc/passwd"],
                      keep_globs=[f"/{LIBDIR}/libc.a"])
    paths = [f"/{LIBDIR}/libzstd.so.1", f"/{LIBDIR}/libz.so.1", f"/{LIBDIR}/libc.a",
             "/etc/ld.so.conf", "/nope", "/lib/x86_64-linux-gnu/libzstd.so.1", "/usr/bin/app"]
    _, plan = run(_libs_image(), GZIP, matcher, config={"Cmd": ["/usr/bin/app"]},
                  explain=paths)
    why = {p: plan.why[p] for p in paths}
    assert why[paths[0]]["verdict"] == "removed" and why[paths[0]]["rule"] == "user.strip.1"
    assert why[paths[1]]["text"] == (
        f"/{LIBDIR}/libz.so.1: kept: rule user.strip.1 matches it, but the image needs it: "
        f"{LIBDIR}/libz.so.1 <- usr/bin/app (DT_NEEDED) <- Cmd")
    assert why[paths[2]]["kept_by"] == "user.keep.1"
    assert why["/etc/ld.so.conf"]["text"].startswith(
        "/etc/ld.so.conf: kept: no rule matches it; the image needs it: etc/ld.so.conf <- ")
    assert why["/nope"] == {**why["/nope"], "verdict": "absent",
                            "text": "/nope: not in the image"}
    via = why["/lib/x86_64-linux-gnu/libzstd.so.1"]
    assert via["verdict"] == "removed" and via["resolves_to"] == f"/{LIBDIR}/libzstd.so.1"
    assert why["/usr/bin/app"]["chain"] == ["usr/bin/app", "Cmd"]
    # /etc/passwd is a system file the closure keeps, although --strip names it
    assert plan.why.get("/etc/passwd") is None
    assert "etc/passwd" in {o.path for o in plan.overrides}


def test_closure_wins_over_a_profile_rule_as_over_a_glob() -> None:
    """A profile's rule, not only a user's --strip, that names a library the image loads."""
    from slimmer.profiles.loader import parse_profile
    profile = parse_profile({"name": "libs", "description": "every shared library",
                             "rule": [{"id": "libs.so", "strip": [f"/{LIBDIR}/lib*"]}]},
                            "test")
    sink, plan = run(_libs_image(), GZIP, Matcher([profile]), config={"Cmd": ["/usr/bin/app"]})
    fs = final_fs(sink.layer_tars())
    assert {f"{LIBDIR}/libz.so.1.2.13", f"{LIBDIR}/libz.so.1", f"{LIBDIR}/libc.so.6"} <= set(fs)
    assert f"{LIBDIR}/libzstd.so.1" not in fs
    libz = {o.path: o for o in plan.overrides}[f"{LIBDIR}/libz.so.1.2.13"]
    assert libz.kind == OverrideKind.PROTECTED and libz.rule == "libs.so"
    assert {r.path for r in plan.removed} == {f"{LIBDIR}/libzstd.so.1", f"{LIBDIR}/libc.a"}
