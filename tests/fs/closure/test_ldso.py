"""The dynamic linker's search order and token expansion, and the command lines a config
starts (words, shell scripts, interpreters' arguments)."""

from __future__ import annotations

from types import SimpleNamespace

from slimmer.fs.closure.commands import StartKind, config_commands, interpreter_starts
from slimmer.fs.closure.facts import ElfFacts
from slimmer.fs.closure.graph import Need
from slimmer.fs.closure.ldso import default_dirs, expand, search_dirs

X64 = ElfFacts(64, 62)


def test_expand_tokens() -> None:
    assert expand("$ORIGIN/../lib", ["opt/app/bin"], X64) == ["opt/app/lib"]
    assert expand("${ORIGIN}/x", ["a", "b/c"], X64) == ["a/x", "b/c/x"]
    assert expand("/usr/$LIB/plugins", ["x"], X64) == [
        "usr/lib64/plugins", "usr/lib/x86_64-linux-gnu/plugins", "usr/lib/plugins"]
    assert expand("/opt/$PLATFORM", ["x"], X64) == ["opt/x86_64"]
    assert expand("relative/dir", ["x"], X64) == []   # not absolute after expansion: ignored


def test_search_order_rpath_runpath_nodeflib() -> None:
    rpath = ElfFacts(64, 62, rpath=("/r",))
    assert search_dirs(rpath, ["o"], ["inherited"], ["env"], ["conf"])[:4] == [
        "r", "inherited", "env", "conf"]
    both = ElfFacts(64, 62, rpath=("/r",), runpath=("/run",))
    assert search_dirs(both, ["o"], ["inherited"], ["env"], ["conf"])[:3] == [
        "env", "run", "conf"]                       # DT_RUNPATH disables DT_RPATH
    nodef = ElfFacts(64, 62, nodeflib=True)
    assert search_dirs(nodef, ["o"], [], ["env"], ["conf"]) == ["env"]
    assert default_dirs(ElfFacts(32, 3))[:4] == ["lib/i386-linux-gnu", "usr/lib/i386-linux-gnu",
                                                 "lib32", "usr/lib32"]


def _config(**cfg: object) -> SimpleNamespace:
    return SimpleNamespace(entrypoint=tuple(cfg.get("Entrypoint", ())),  # type: ignore[arg-type]
                           cmd=tuple(cfg.get("Cmd", ())),  # type: ignore[arg-type]
                           healthcheck=tuple(cfg.get("Healthcheck", ())),  # type: ignore[arg-type]
                           shell=tuple(cfg.get("Shell", ())))  # type: ignore[arg-type]


def test_config_commands() -> None:
    cmds = config_commands(_config(Entrypoint=["tini", "--"], Cmd=["sh", "-c",
                                   "FOO=1 exec gunicorn app:wsgi && echo done | tee log"],
                                   Healthcheck=["CMD-SHELL", "curl -f localhost || exit 1"]))
    first = cmds[0]
    assert first.words[:2] == ["tini", "--"] and first.needs[0] == Need.ENTRYPOINT
    assert first.needs[2] == Need.CMD and first.cmd == [True] + [False] * 4
    shell = [c.words for c in cmds[1:]]
    assert ["exec", "gunicorn", "app:wsgi"] in shell and ["tee", "log"] in shell
    assert [c.words for c in cmds[-3:]] == [["/bin/sh", "-c"], ["curl", "-f", "localhost"],
                                            ["exit", "1"]]
    assert cmds[-3].needs[0] == Need.SHELL and cmds[-2].needs[0] == Need.HEALTHCHECK


def test_interpreter_arguments() -> None:
    starts = interpreter_starts(["docker-entrypoint.sh", "python3", "-u", "-X", "dev", "-m",
                                 "pkg.cli", "--port", "80"])
    assert [(s.kind, s.value, s.interpreter) for s in starts] == [
        (StartKind.PY_MODULE, "pkg.cli", "python3")]
    assert interpreter_starts(["python", "-cimport x"])[0].value == "import x"
    assert interpreter_starts(["python3", "app.py", "-m", "no"]) == []
    node = interpreter_starts(["/usr/bin/node", "-r", "dotenv/config", "--require=./t",
                               "--max-old-space-size=64", "dist/main", "-e", "x"])
    assert [(s.kind, s.value) for s in node] == [
        (StartKind.JS_REQUIRE, "dotenv/config"), (StartKind.JS_REQUIRE, "./t"),
        (StartKind.JS_SCRIPT, "dist/main")]
    assert [(s.kind, s.value) for s in interpreter_starts(["npm", "run", "serve"])] == [
        (StartKind.NPM_SCRIPT, "serve")]
