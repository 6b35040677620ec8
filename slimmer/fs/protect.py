"""Paths the image needs to start: what Entrypoint/Cmd name, the symlinks on the way, and the
interpreters named by their shebang lines. Stripping rules never remove these."""

from __future__ import annotations

import posixpath
import shlex
from typing import Any, Sequence

from slimmer.fs.index import Rec
from slimmer.fs.overlay import Overlay
from slimmer.oci.layer import HARDLINK, SYMLINK

_MAX_HOPS = 40


def _resolve(path: str, final: Overlay, recs: Sequence[Sequence[Rec]],
             touched: set[str]) -> str | None:
    """Resolve an absolute path in the final tree following symlinks at every component;
    every symlink passed and the result are added to ``touched``. None if it does not exist."""
    parts = [p for p in path.split("/") if p and p != "."]
    cur: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if cur:
                cur.pop()
            continue
        cand = "/".join(cur + [part])
        ref = final.get(cand)
        if ref is None:
            if not final.children.get(cand):
                return None
            cur.append(part)
            continue
        rec = recs[ref[0]][ref[1]]
        if rec.kind == SYMLINK:
            hops += 1
            if hops > _MAX_HOPS:
                return None
            touched.add(cand)
            target = rec.linkname
            base = [] if target.startswith("/") else list(cur)
            parts = [p for p in target.split("/") if p and p != "."] + parts
            cur = base
            continue
        cur.append(part)
    result = "/".join(cur)
    if result:
        touched.add(result)
        ref = final.get(result)
        if ref is not None and recs[ref[0]][ref[1]].kind == HARDLINK:
            touched.add(recs[ref[0]][ref[1]].linkname)
    return result


def protected_paths(final: Overlay, recs: Sequence[Sequence[Rec]], config: Any) -> set[str]:
    """Root-relative paths that Entrypoint/Cmd (and their interpreters) need."""
    entry = list(config.entrypoint)
    cmd = list(config.cmd)
    argv = entry + cmd
    if not argv:
        return set()
    env_path = config.env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    workdir = config.working_dir or "/"
    touched: set[str] = set()
    words: list[str] = []
    for arg in argv:
        words.append(arg)
        if " " in arg:  # `sh -c "..."` scripts: look at their words too
            try:
                words.extend(shlex.split(arg))
            except ValueError:
                words.extend(arg.split())
    todo = [(w, i == 0) for i, w in enumerate(words)]
    done: set[str] = set()
    while todo:
        word, is_cmd = todo.pop(0)
        if not word or word.startswith("-") or (word, is_cmd) in done:
            continue
        done.add((word, is_cmd))  # type: ignore[arg-type]
        if "/" in word:
            candidates = [posixpath.join(workdir, word)]
        else:  # a bare word may be a command (PATH) or a file in the working directory
            candidates = [posixpath.join(d, word) for d in env_path.split(":") if d]
            if not is_cmd:
                candidates.append(posixpath.join(workdir, word))
        for cand in candidates:
            found = _resolve(cand, final, recs, touched)
            if found is None:
                continue
            ref = final.get(found)
            if ref is not None:
                rec = recs[ref[0]][ref[1]]
                src = rec
                if rec.kind == HARDLINK:
                    lref = final.get(rec.linkname)
                    src = recs[lref[0]][lref[1]] if lref else rec
                if src.shebang:
                    sb = src.shebang.strip().split()
                    if sb:
                        todo.append((sb[0], True))
                        if posixpath.basename(sb[0]) == "env":
                            args = [a for a in sb[1:] if not a.startswith("-")]
                            if args:
                                todo.append((args[0], True))
            break
    return touched
