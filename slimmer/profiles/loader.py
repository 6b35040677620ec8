"""Loading and validating profile files (built-in package data and the user's), and choosing the
profiles a run uses. The format is described in FORMAT.md."""

from __future__ import annotations

import functools
import re
import tomllib
from importlib import resources
from typing import Any, Sequence

from slimmer.errors import ProfileError
from slimmer.globs import compile_glob
from slimmer.profiles.model import CATEGORIES, CONTENT_KINDS, ENTRY_KINDS, Profile, Rule
from slimmer.units import parse_size

#: Profile names that select something other than a profile.
NONE_NAME = "none"
DEFAULT_NAME = "default"
#: Name of the synthetic profile holding --strip/--keep globs.
USER_PROFILE = "user"
_RESERVED = frozenset({NONE_NAME, DEFAULT_NAME, USER_PROFILE, "all", "builtin"})

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PROFILE_KEYS = frozenset({"name", "description", "default", "warning", "category", "rule"})
_RULE_KEYS = frozenset({"id", "description", "strip", "keep", "content", "min_size", "types",
                        "if_image_has", "unless_image_has"})


def _str_list(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def _parse_rule(doc: Any, name: str, where: str, index: int) -> Rule:
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: rule #{index} must be a table")
    rule_id = doc.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise ProfileError(f"{where}: rule #{index} needs a string 'id'")
    where = f"{where}: rule {rule_id}"
    unknown = sorted(set(doc) - _RULE_KEYS)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if not rule_id.startswith(name + ".") or not _ID_RE.match(rule_id) or rule_id == name + ".":
        raise ProfileError(f"{where}: id must be '{name}.' followed by letters, digits, '.', '-', '_'")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{where}: 'description' must be a string")
    strip = _str_list(doc.get("strip", []), where, "strip")
    keep = _str_list(doc.get("keep", []), where, "keep")
    if not strip and not keep:
        raise ProfileError(f"{where}: needs at least one 'strip' or 'keep' glob")
    if_has = _str_list(doc.get("if_image_has", []), where, "if_image_has")
    unless_has = _str_list(doc.get("unless_image_has", []), where, "unless_image_has")
    for glob in strip + keep + if_has + unless_has:
        try:
            compile_glob(glob)
        except ValueError as exc:
            raise ProfileError(f"{where}: bad glob {glob!r}: {exc}") from None
    content = _str_list(doc.get("content", []), where, "content")
    bad = [c for c in content if c not in CONTENT_KINDS]
    if bad:
        raise ProfileError(f"{where}: unknown content kind(s) {', '.join(bad)} "
                           f"(known: {', '.join(CONTENT_KINDS)})")
    try:
        min_size = parse_size(doc.get("min_size", 0))
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    types = _str_list(doc.get("types", list(ENTRY_KINDS)), where, "types")
    bad = [t for t in types if t not in ENTRY_KINDS]
    if bad or not types or len(set(types)) != len(types):
        raise ProfileError(f"{where}: 'types' must be distinct values of {', '.join(ENTRY_KINDS)}")
    if (content or min_size) and "file" not in types:
        raise ProfileError(f"{where}: 'content' and 'min_size' only match files; add \"file\""
                           " to types")
    return Rule(id=rule_id, profile=name, description=description, strip=strip, keep=keep,
                content=tuple(dict.fromkeys(content)), min_size=min_size,
                types=tuple(t for t in ENTRY_KINDS if t in types), if_image_has=if_has,
                unless_image_has=unless_has)


def parse_profile(doc: Any, source: str, label: str | None = None) -> Profile:
    """Validate one profile table (already parsed from TOML). ``source`` becomes
    ``Profile.source``; ``label`` (default: ``source``) names the file in error messages."""
    where = label or source
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: a profile must be a table")
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ProfileError(f"{where}: 'name' must be a lower-case name like \"my-rules\"")
    where = f"{where}: profile {name}"
    unknown = sorted(set(doc) - _PROFILE_KEYS)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if name in _RESERVED:
        raise ProfileError(f"{where}: '{name}' is a reserved name")
    description = doc.get("description")
    if not isinstance(description, str) or not description:
        raise ProfileError(f"{where}: needs a string 'description'")
    default = doc.get("default", False)
    if not isinstance(default, bool):
        raise ProfileError(f"{where}: 'default' must be true or false")
    warning = doc.get("warning")
    if warning is not None and not isinstance(warning, str):
        raise ProfileError(f"{where}: 'warning' must be a string")
    category = doc.get("category")
    if category is not None and category not in CATEGORIES:
        raise ProfileError(f"{where}: 'category' must be one of {', '.join(CATEGORIES)}")
    raw_rules = doc.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ProfileError(f"{where}: needs at least one [[rule]]")
    rules = tuple(_parse_rule(r, name, where, i) for i, r in enumerate(raw_rules, 1))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ProfileError(f"{where}: duplicate rule id {rule.id}")
        seen.add(rule.id)
    return Profile(name=name, description=description, rules=rules, default=default,
                   warning=warning or None, source=source, category=category)


def _parse_document(text: str, source: str, label: str) -> list[Profile]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{label}: invalid TOML: {exc}") from None
    if "profile" in doc:
        if set(doc) != {"profile"} or not isinstance(doc["profile"], list) or not doc["profile"]:
            raise ProfileError(f"{label}: use either top-level profile keys or [[profile]] tables")
        profiles = [parse_profile(p, source, label) for p in doc["profile"]]
    else:
        profiles = [parse_profile(doc, source, label)]
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise ProfileError(f"{label}: profile names repeat")
    return profiles


def load_profile_file(path: str) -> list[Profile]:
    """Load a user profile file: one profile in the built-in format, or several [[profile]]."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ProfileError(f"cannot read profile file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{path}: profile file is not UTF-8") from None
    return _parse_document(text, path, path)


@functools.cache
def _builtin() -> tuple[Profile, ...]:
    data = resources.files(__package__).joinpath("data")
    profiles: list[Profile] = []
    for entry in sorted(data.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        loaded = _parse_document(entry.read_text(encoding="utf-8"), "builtin",
                                 f"built-in profile file {entry.name}")
        if len(loaded) != 1 or loaded[0].name + ".toml" != entry.name:
            raise ProfileError(f"builtin {entry.name}: must hold exactly the profile of that name")
        profiles.append(loaded[0])
    return tuple(profiles)


def builtin_profiles() -> dict[str, Profile]:
    """The built-in profiles by name, in name order (read once from the package data)."""
    return {p.name: p for p in _builtin()}


def select_profiles(names: Sequence[str], profile_files: Sequence[str] = ()) -> list[Profile]:
    """Resolve --profile values and --profile-file paths to the profiles a run uses.

    Each value may be comma-separated. No values means the default set; "default" adds the
    default set; "none" selects no built-in profile by itself. Built-ins come in their canonical
    (name) order whatever order they were given in, then the profiles of the files in order.
    """
    if isinstance(names, str):
        names = [names]
    if isinstance(profile_files, str):
        profile_files = [profile_files]
    builtins = builtin_profiles()
    wanted: set[str] = set()
    explicit = False
    for value in names:
        for piece in value.split(","):
            name = piece.strip()
            if not name:
                continue
            explicit = True
            if name == NONE_NAME:
                continue
            if name == DEFAULT_NAME:
                wanted.update(n for n, p in builtins.items() if p.default)
            elif name in builtins:
                wanted.add(name)
            else:
                known = ", ".join([*builtins, DEFAULT_NAME, NONE_NAME])
                raise ProfileError(f"unknown profile {name!r} (known: {known})")
    if not explicit:
        wanted = {n for n, p in builtins.items() if p.default}
    selected = [p for n, p in builtins.items() if n in wanted]
    seen_names = {p.name: p.source for p in builtins.values()}
    for path in dict.fromkeys(profile_files):
        for profile in load_profile_file(path):
            if profile.name in seen_names:
                other = seen_names[profile.name]
                raise ProfileError(f"{path}: profile {profile.name} is already defined"
                                   f" ({'built-in' if other == 'builtin' else 'in ' + other})")
            seen_names[profile.name] = path
            selected.append(profile)
    return selected
