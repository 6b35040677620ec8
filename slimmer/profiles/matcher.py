"""The matcher: all selected rules compiled into a few cached regular expressions.

``Matcher.match`` runs for every entry of every layer, so it does as little Python work as it can:
each glob is put in one bucket (literal basename, first two literal path segments, first literal
segment, basename extension, a literal "/segment/" the path must contain, or "anywhere"); the
buckets a path falls into, its entry kind and the conditional rules its size/content satisfy
form a key, and for each key seen the candidate rules are joined once into one alternation with
one capturing group per rule (in rule order), so ``lastindex`` names the first matching rule. Keep globs are compiled the same way and only tried
when a strip rule matched.

Rules with ``if_image_has`` / ``unless_image_has`` conditions are left out until
``for_image`` has looked at the image's paths and turned them on.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from slimmer.errors import ProfileError, UsageError
from slimmer.globs import Glob, compile_glob
from slimmer.profiles.loader import USER_PROFILE
from slimmer.profiles.model import ENTRY_KINDS, Match, Profile, Rule

_Bucket = tuple[str, str] | None
# (kind, first segment, first two segments, basename, extension, guard bits, condition bits);
# the path parts are None unless some glob is bucketed under them.
_Key = tuple[str, str | None, str | None, str | None, str | None, int, int | None]
# (strip regex, Match per strip group, keep regex, Rule per keep group)
_Entry = tuple["re.Pattern[str] | None", tuple[Match, ...], "re.Pattern[str] | None", tuple[Rule, ...]]


def _bucket(glob: Glob) -> _Bucket:
    """The most selective bucket a glob can live in; None means it is tried for every path."""
    if glob.basename is not None:
        return ("b", glob.basename)
    if len(glob.prefix) == 2:
        return ("p2", glob.prefix[0] + "/" + glob.prefix[1])
    if glob.prefix:
        return ("p1", glob.prefix[0])
    if glob.ext is not None:
        return ("e", glob.ext)
    if glob.guard is not None:
        return ("g", glob.guard)
    return None


def present_globs(patterns: Iterable[str], paths: Iterable[str]) -> set[str]:
    """The globs of ``patterns`` that match at least one of ``paths`` (one pass over the paths
    with one alternation, shrunk as globs are found)."""
    left = sorted(set(patterns))
    found: set[str] = set()
    regex = _alternation([[compile_glob(g)] for g in left])
    for path in paths:
        if regex is None:
            break
        m = regex.fullmatch(path)
        if m is not None:
            found.add(left.pop(m.lastindex - 1))  # type: ignore[operator]
            regex = _alternation([[compile_glob(g)] for g in left])
    return found


def _alternation(groups: list[list[Glob]]) -> re.Pattern[str] | None:
    if not groups:
        return None
    source = "|".join("(" + "|".join(g.regex for g in globs) + ")" for globs in groups)
    return re.compile(source, re.DOTALL)


class Matcher:
    """Decides, for one entry path, which strip rule selects it and whether a keep rule wins.

    Rule order is profile order, then file order, then the --strip globs (synthetic profile
    "user", ids "user.strip.N"); keep globs of every selected rule beat every strip, and the
    --keep globs ("user.keep.N") are checked first so they are the ones reported.
    ``min_content_size`` is the smallest ``min_size`` among content rules (0 if there are none):
    smaller files never need sniffing. A Matcher is immutable apart from its internal cache and
    can be shared between threads.
    """

    min_content_size: int

    def __init__(self, profiles: Sequence[Profile], strip_globs: Sequence[str] = (),
                 keep_globs: Sequence[str] = (), *, enabled: frozenset[str] = frozenset()
                 ) -> None:
        self._args = (tuple(profiles), tuple(strip_globs), tuple(keep_globs))
        user_strip = [Rule(id=f"{USER_PROFILE}.strip.{i}", profile=USER_PROFILE,
                           description=f"--strip {g}", strip=(g,))
                      for i, g in enumerate(strip_globs, 1)]
        user_keep = [Rule(id=f"{USER_PROFILE}.keep.{i}", profile=USER_PROFILE,
                          description=f"--keep {g}", strip=(), keep=(g,))
                     for i, g in enumerate(keep_globs, 1)]
        profile_rules = [r for p in profiles for r in p.rules]
        self._rules: tuple[Rule, ...] = tuple(profile_rules + user_strip + user_keep)
        seen: set[str] = set()
        for rule in self._rules:
            if rule.id in seen:
                raise ProfileError(f"rule id {rule.id} appears twice (profile {rule.profile})")
            seen.add(rule.id)

        def compiled(rule: Rule, globs: tuple[str, ...]) -> list[tuple[Glob, _Bucket]]:
            out = []
            for pattern in globs:
                try:
                    glob = compile_glob(pattern)
                except ValueError as exc:
                    if rule.profile == USER_PROFILE:
                        raise UsageError(f"bad glob {pattern!r} ({rule.description.split()[0]}):"
                                         f" {exc}") from None
                    raise ProfileError(f"rule {rule.id}: bad glob {pattern!r}: {exc}") from None
                out.append((glob, _bucket(glob)))
            return out

        self._conditional = tuple(r for r in profile_rules if r.conditional)
        for r in self._conditional:
            compiled(r, r.if_image_has + r.unless_image_has)
        self._enabled = enabled
        active = [r for r in profile_rules if not r.conditional or r.id in enabled]
        self._strip = [(r, compiled(r, r.strip)) for r in active + user_strip if r.strip]
        self._keep = [(r, compiled(r, r.keep)) for r in user_keep + active if r.keep]
        self._cond = tuple(r for r, _ in self._strip if r.content or r.min_size)
        self._cond_bit = {r.id: 1 << i for i, r in enumerate(self._cond)}
        self._size_only = any(not r.content for r in self._cond)
        buckets = {b for _, globs in self._strip + self._keep for _, b in globs if b is not None}
        self._p1 = frozenset(v for k, v in buckets if k == "p1")
        self._p2 = frozenset(v for k, v in buckets if k == "p2")
        self._bases = frozenset(v for k, v in buckets if k == "b")
        self._exts = frozenset(v for k, v in buckets if k == "e")
        guards = sorted(v for k, v in buckets if k == "g")
        self._guards = tuple((g, 1 << i) for i, g in enumerate(guards))
        self._cache: dict[_Key, _Entry] = {}
        self._kept: dict[tuple[str, str], Match] = {}
        content_rules = [r for r in self._rules if r.content and r.strip]
        self.min_content_size = min((r.min_size for r in content_rules), default=0)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule in match order (profile rules, then user strip rules, then user keeps)."""
        return self._rules

    def for_image(self, paths: Iterable[str]) -> "Matcher":
        """This matcher for one image whose final tree holds ``paths`` (absolute, normalised):
        a conditional rule is on when some path matches one of its ``if_image_has`` globs (or
        it has none) and no path matches one of its ``unless_image_has`` globs."""
        if not self._conditional:
            return self
        found = present_globs({g for r in self._conditional
                          for g in r.if_image_has + r.unless_image_has}, paths)
        enabled = frozenset(r.id for r in self._conditional
                            if (not r.if_image_has or found.intersection(r.if_image_has))
                            and not found.intersection(r.unless_image_has))
        if enabled == self._enabled:
            return self
        return Matcher(*self._args, enabled=enabled)

    def needs_content(self) -> bool:
        """True if some rule looks at content, so the scanner must sniff file heads."""
        return any(r.content for r in self._rules if r.strip)

    def match(self, path: str, kind: str, size: int = 0, content: str | None = None) -> Match | None:
        """Match one entry; None if no strip rule selects it, else the first strip rule that does
        and the keep rule that protects it (if any).

        ``path`` is absolute and normalised ("/usr/bin/gcc"); ``kind`` one of ENTRY_KINDS;
        ``size`` and ``content`` (from ``sniff_content``) only matter for regular files and hard
        links (pass the size and content of the file a hard link points to).
        """
        parts = path.split("/", 3)
        n = len(parts)
        p1 = parts[1] if n > 1 else ""
        p2 = p1 + "/" + parts[2] if n > 2 else None
        base = path[path.rfind("/") + 1:]
        dot = base.rfind(".")
        ck = None
        if self._cond and (kind == "file" or kind == "hardlink") and (
                content is not None or self._size_only):
            ck = self._cond_key(size, content)
        guards = 0
        for guard, bit in self._guards:
            if guard in path:
                guards |= bit
        key: _Key = (kind,
               p1 if p1 in self._p1 else None,
               p2 if p2 in self._p2 else None,
               base if base in self._bases else None,
               base[dot + 1:] if dot >= 0 and base[dot + 1:] in self._exts else None,
               guards,
               ck)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._build(key)
        strip_re, strip_matches, keep_re, keep_rules = entry
        if strip_re is None:
            return None
        m = strip_re.fullmatch(path)
        if m is None:
            return None
        found = strip_matches[m.lastindex - 1]  # type: ignore[operator]
        if keep_re is not None:
            km = keep_re.fullmatch(path)
            if km is not None:
                keeper = keep_rules[km.lastindex - 1]  # type: ignore[operator]
                pair = (found.rule.id, keeper.id)
                kept = self._kept.get(pair)
                if kept is None:
                    kept = self._kept[pair] = Match(found.rule, keeper)
                return kept
        return found

    def _cond_key(self, size: int, content: str | None) -> int | None:
        bits = 0
        for rule in self._cond:
            if size >= rule.min_size and (not rule.content or content in rule.content):
                bits |= self._cond_bit[rule.id]
        return bits or None

    def _build(self, key: _Key) -> _Entry:
        kind, p1, p2, base, ext, guards, ck = key
        if kind not in ENTRY_KINDS:
            raise ValueError(f"unknown entry kind {kind!r}")
        active: set[_Bucket] = {None}
        for tag, value in (("p1", p1), ("p2", p2), ("b", base), ("e", ext)):
            if value is not None:
                active.add((tag, value))
        for guard, bit in self._guards:
            if guards & bit:
                active.add(("g", guard))
        strip_groups: list[list[Glob]] = []
        strip_matches: list[Match] = []
        for rule, globs in self._strip:
            if kind not in rule.types:
                continue
            cond_bit = self._cond_bit.get(rule.id)
            if cond_bit is not None and not (ck is not None and ck & cond_bit):
                continue
            chosen = [g for g, b in globs if b in active]
            if chosen:
                strip_groups.append(chosen)
                strip_matches.append(Match(rule))
        keep_groups: list[list[Glob]] = []
        keep_rules: list[Rule] = []
        if strip_groups:
            for rule, globs in self._keep:
                chosen = [g for g, b in globs if b in active]
                if chosen:
                    keep_groups.append(chosen)
                    keep_rules.append(rule)
        entry: _Entry = (_alternation(strip_groups), tuple(strip_matches),
                         _alternation(keep_groups), tuple(keep_rules))
        self._cache[key] = entry
        return entry
