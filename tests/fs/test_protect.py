"""Entrypoint protection: the program, the symlinks on the way and the shebang interpreter
survive any strip rule, and the report says so."""

from __future__ import annotations

from slimmer.plan.model import PlanOptions
from slimmer.profiles import Matcher

from support.memimage import final_fs, make_tar
from support.slimrun import run


def test_entrypoint_interpreter_and_symlinks_are_kept() -> None:
    tars = [make_tar([("dir", "usr"), ("dir", "usr/bin"), ("symlink", "bin", "usr/bin"),
                      ("file", "usr/bin/python3.11", b"\x7fELF", 0o755),
                      ("symlink", "usr/bin/python3", "python3.11"),
                      ("file", "usr/bin/env", b"\x7fELF", 0o755),
                      ("dir", "app"), ("file", "app/run", b"#!/usr/bin/env python3\nprint(1)\n", 0o755),
                      ("file", "usr/bin/other", b"x", 0o755)])]
    matcher = Matcher([], strip_globs=["/usr/bin/**", "/app/**"])
    sink, plan = run(tars, PlanOptions(compression="gzip"), matcher,
                     config={"Entrypoint": ["/app/run"], "Env": ["PATH=/bin"]})
    fs = final_fs(sink.layer_tars())
    for kept in ("app/run", "usr/bin/env", "usr/bin/python3", "usr/bin/python3.11"):
        assert kept in fs, kept
    assert "usr/bin/other" not in fs
    reasons = {o.path: o.reason for o in plan.overrides}
    assert reasons["usr/bin/python3.11"] == "needed by the entrypoint"


def test_cmd_through_path_and_shell_words() -> None:
    tars = [make_tar([("file", "usr/local/bin/server", b"bin", 0o755),
                      ("file", "opt/start.sh", b"#!/bin/sh\n", 0o755),
                      ("file", "bin/sh", b"sh", 0o755)])]
    matcher = Matcher([], strip_globs=["/usr/local/bin/*", "/opt/*", "/bin/*"])
    sink, _ = run(tars, PlanOptions(compression="gzip"), matcher,
                  config={"Cmd": ["/bin/sh", "-c", "/opt/start.sh && server"]})
    fs = final_fs(sink.layer_tars())
    assert {"bin/sh", "opt/start.sh", "usr/local/bin/server"} <= set(fs)
