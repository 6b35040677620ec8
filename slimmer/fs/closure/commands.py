"""The commands an image runs, as words: Entrypoint + Cmd, Healthcheck (``CMD`` or
``CMD-SHELL``, which runs the shell), the words of ``sh -c`` scripts, and what an interpreter
on such a command line is asked to run (``python -m MOD``, ``python script.py``, ``node -r
MOD app.js``, ``npm start``)."""

from __future__ import annotations

import posixpath
import shlex
from enum import StrEnum
from typing import Any, NamedTuple, Sequence

from slimmer.fs.closure.graph import Need
from slimmer.fs.closure.node import NODE_NAMES
from slimmer.fs.closure.python import PYTHON_NAME

_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"})
_PY_VALUE_OPTS = frozenset({"-W", "-X", "--check-hash-based-pycs"})
_NODE_REQUIRE = frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader"})
_NODE_EVAL = frozenset({"-e", "--eval", "-p", "--print"})
_NODE_VALUE_OPTS = frozenset({"-C", "--conditions", "--inspect-port", "--title",
                              "--env-file", "--input-type"})


class StartKind(StrEnum):
    """What an interpreter on a command line runs."""

    PY_MODULE = "python -m"
    PY_CODE = "python -c"
    JS_REQUIRE = "node --require"
    JS_CODE = "node --eval"
    JS_SCRIPT = "node script"
    NPM_SCRIPT = "npm script"


class Start(NamedTuple):
    """``interpreter`` (the word that named it) runs ``value`` as ``kind``."""

    kind: StartKind
    value: str
    interpreter: str


class Command(NamedTuple):
    """One command line: its words, whether each is in command position, and the starting
    point each belongs to."""

    words: list[str]
    cmd: list[bool]
    needs: list[Need]

    @classmethod
    def of(cls, words: list[str], need: Need) -> "Command":
        return cls(words, [i == 0 for i in range(len(words))], [need] * len(words))


def shell_commands(script: str, need: Need) -> list[Command]:
    """The simple commands of a shell script string, split at operators."""
    try:
        lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        tokens = script.split()
    out: list[Command] = []
    words: list[str] = []
    for tok in tokens + [";"]:
        if tok in _OPERATORS or set(tok) <= set(";&|()"):
            if words:
                out.append(Command.of(words, need))
            words = []
        elif not (not words and "=" in tok and tok.split("=", 1)[0].isidentifier()):
            words.append(tok)
    return out


def config_commands(config: Any) -> list[Command]:
    """Every command line the config starts: Entrypoint + Cmd (each word labelled by where
    it came from), the words of shell scripts among them, and the Healthcheck."""
    entry, cmd = list(config.entrypoint), list(config.cmd)
    argv = entry + cmd
    out: list[Command] = []
    if argv:
        needs = [Need.ENTRYPOINT] * len(entry) + [Need.CMD] * len(cmd)
        out.append(Command(argv, [i == 0 for i in range(len(argv))], needs))
        for arg, need in zip(argv, needs):
            if " " in arg or "\n" in arg:
                out.extend(shell_commands(arg, need))
    test = list(config.healthcheck)
    if test and test[0] == "CMD" and len(test) > 1:
        out.append(Command.of(test[1:], Need.HEALTHCHECK))
    elif test and test[0] == "CMD-SHELL" and len(test) > 1:
        out.append(Command.of(list(config.shell) or ["/bin/sh", "-c"], Need.SHELL))
        out.extend(shell_commands(test[1], Need.HEALTHCHECK))
    return out


def interpreter_starts(words: Sequence[str]) -> list[Start]:
    """What Python, Node or npm words on a command line are asked to run."""
    out: list[Start] = []
    for i, word in enumerate(words):
        base = posixpath.basename(word)
        rest = list(words[i + 1:])
        if PYTHON_NAME.fullmatch(base):
            out.extend(_python(rest, word))
        elif base in NODE_NAMES:
            out.extend(_node(rest, word))
        elif base == "npm" and rest:
            name = rest[1] if rest[0] in ("run", "run-script") and len(rest) > 1 else rest[0]
            if rest[0] in ("start", "test", "t", "run", "run-script", "restart", "stop"):
                out.append(Start(StartKind.NPM_SCRIPT, "test" if name == "t" else name, word))
    return out


def _python(rest: list[str], word: str) -> list[Start]:
    i = 0
    while i < len(rest):
        w = rest[i]
        for flag, kind in (("-m", StartKind.PY_MODULE), ("-c", StartKind.PY_CODE)):
            if w == flag and i + 1 < len(rest):
                return [Start(kind, rest[i + 1], word)]
            if w.startswith(flag) and len(w) > 2:
                return [Start(kind, w[2:], word)]
        if w in _PY_VALUE_OPTS:
            i += 2
            continue
        if not w.startswith("-") or w == "-":
            return []   # the script: an ordinary argument (resolved with the other words)
        i += 1
    return []


def _node(rest: list[str], word: str) -> list[Start]:
    out: list[Start] = []
    i = 0
    while i < len(rest):
        w = rest[i]
        name, eq, value = w.partition("=")
        if name in _NODE_REQUIRE or name in _NODE_EVAL:
            if not eq:
                if i + 1 >= len(rest):
                    break
                value = rest[i + 1]
                i += 1
            out.append(Start(StartKind.JS_REQUIRE if name in _NODE_REQUIRE
                             else StartKind.JS_CODE, value, word))
        elif name in _NODE_VALUE_OPTS and not eq:
            i += 1
        elif not w.startswith("-"):
            out.append(Start(StartKind.JS_SCRIPT, w, word))
            break
        i += 1
    return out
