"""The one glob engine: patterns over "/"-separated names, compiled once to regular expressions.

Two anchoring modes, one syntax:

- **Image paths** (profile rules, ``--strip``, ``--keep``): ``compile_glob`` over absolute,
  normalised paths without a trailing slash ("/usr/share/doc/bash/README"). A pattern starting
  with "/" is anchored at the image root. Any other pattern *floats*: it may start at any
  depth, as if it were prefixed with "/**/": "*.a" and "__pycache__" match a basename anywhere,
  "node_modules/*/test" matches that path tail anywhere. (FORMAT.md has examples.)
- **Names** (the hook's repository and tag globs): ``compile_name_glob`` is *anchored*: the
  pattern must match the whole name, "team/*" matches "team/app" but not "x/team/app".

Syntax, in both modes:

- "*" matches any run of characters inside one path segment, "?" exactly one character,
  "[abc]", "[a-z]", "[!abc]" (or "[^abc]") one character of a class; "\\" makes the next
  character literal. None of them ever matches "/". Matching is case-sensitive.
- "**" must be a whole segment. Inside a pattern it matches zero or more whole segments
  ("/a/**/b" matches "/a/b" and "/a/x/y/b"); at the end it matches one or more, so
  "/usr/share/doc/**" selects every path strictly below "/usr/share/doc" but not the directory
  itself ("/**" selects everything).
- A trailing "/", empty segments, "." and ".." are rejected: they could never match a normalised
  path. Use a rule's ``types`` to restrict a rule to directories.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_DOUBLE = object()  # marker for a "**" segment


@dataclass(frozen=True)
class Glob:
    """A compiled glob plus the facts the matcher uses to bucket it.

    ``regex`` has no anchors and no capturing groups, so it can be joined into alternations.
    ``prefix`` holds up to two leading literal segments of the pattern, ``basename`` the literal
    last segment, ``ext`` the extension (text after the last dot) every matching basename has,
    ``guard`` a "/segment/" string every matching path contains (the longest literal segment
    that is not the last one).
    """

    pattern: str
    regex: str
    prefix: tuple[str, ...]
    basename: str | None
    ext: str | None
    guard: str | None

    @functools.cached_property
    def compiled(self) -> re.Pattern[str]:
        """The regex compiled, on first use: loading the built-in profiles translates a few
        hundred globs, and the matcher joins their ``regex`` texts instead (compiling each one
        too was most of the profiles' load time)."""
        return re.compile(self.regex, re.DOTALL)

    def matches(self, path: str) -> bool:
        """True if the whole ``path`` matches this glob."""
        return self.compiled.fullmatch(path) is not None


def _class(seg: str, i: int) -> tuple[str, int]:
    """Translate the class starting at ``seg[i] == '['``; return (regex, index after ']')."""
    j = i + 1
    negate = j < len(seg) and seg[j] in "!^"
    if negate:
        j += 1
    start = j
    if j < len(seg) and seg[j] == "]":
        j += 1  # a ']' first in the class is literal
    while j < len(seg) and seg[j] != "]":
        j += 1
    if j >= len(seg):
        raise ValueError("unclosed '['")
    body = seg[start:j]
    items: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = body[k], body[k + 2]
            if lo > hi:
                raise ValueError(f"bad range {lo}-{hi} in class")
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
            k += 3
        else:
            items.append(re.escape(body[k]))
            k += 1
    return ("[^/" if negate else "[") + "".join(items) + "]", j + 1


def _segment(seg: str) -> tuple[str, str | None, str]:
    """Translate one segment; return (regex, literal text or None, literal suffix)."""
    out: list[str] = []
    text: list[str] = []
    suffix: list[str] = []
    literal = True
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "\\":
            if i + 1 >= len(seg):
                raise ValueError("trailing '\\'")
            c = seg[i + 1]
            out.append(re.escape(c))
            text.append(c)
            suffix.append(c)
            i += 2
            continue
        if c == "*":
            if seg.startswith("**", i):
                raise ValueError("'**' must be a whole path segment")
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            regex, i = _class(seg, i)
            out.append(regex)
            literal = False
            suffix.clear()
            continue
        else:
            out.append(re.escape(c))
            text.append(c)
            suffix.append(c)
            i += 1
            continue
        literal = False
        suffix.clear()
        i += 1
    return "".join(out), ("".join(text) if literal else None), "".join(suffix)


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> Glob:
    """Compile ``pattern``; raise ValueError with a short reason when it is malformed."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("empty glob")
    anchored = pattern.startswith("/")
    body = pattern[1:] if anchored else pattern
    if not body:
        raise ValueError("'/' alone matches nothing; use '/**' for everything")
    if body.endswith("/"):
        raise ValueError("trailing '/' is not allowed (use types = [\"dir\"] for directories)")
    segments: list[object] = [] if anchored else [_DOUBLE]
    for raw in body.split("/"):
        if raw == "":
            raise ValueError("empty path segment ('//')")
        if raw in (".", ".."):
            raise ValueError(f"'{raw}' segments never match a normalised path")
        if raw == "**":
            if not segments or segments[-1] is not _DOUBLE:
                segments.append(_DOUBLE)
        else:
            segments.append(raw)

    parts: list[str] = []
    literals: list[str | None] = []
    suffix = ""
    last = len(segments) - 1
    for index, seg in enumerate(segments):
        if seg is _DOUBLE:
            if index == last:
                parts.append("/.+")
            elif index == 0:
                parts.append(".*")  # paths start with "/", so this is "(/.*)?" at the start
            else:
                parts.append("(?:/.*)?")
            literals.append(None)
        else:
            assert isinstance(seg, str)
            regex, text, suffix = _segment(seg)
            parts.append("/" + regex)
            literals.append(text)

    prefix: list[str] = []
    for text in literals[:2]:
        if text is None:
            break
        prefix.append(text)
    basename = literals[-1]
    inner = [text for text in literals[:-1] if text]
    guard = f"/{max(inner, key=len)}/" if inner else None
    ext = None
    if basename is None and segments[-1] is not _DOUBLE and "." in suffix:
        ext = suffix.rpartition(".")[2]
    return Glob(pattern, "".join(parts), tuple(prefix), basename, ext, guard)


@functools.lru_cache(maxsize=1024)
def compile_name_glob(pattern: str) -> Glob:
    """Compile an anchored glob over a repository name or tag (``team/*``, ``v1.*``);
    ValueError when it is malformed. Match it with ``glob.matches_name(name)``."""
    if pattern.startswith("/"):
        raise ValueError("a name glob does not start with '/'")
    return compile_glob("/" + pattern)


def matches_name(pattern: str, name: str) -> bool:
    """True if the anchored name glob ``pattern`` matches the whole of ``name``."""
    return compile_name_glob(pattern).matches("/" + name)
