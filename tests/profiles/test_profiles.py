"""Tests for slimmer.profiles: loading, validation, selection, glob semantics, matching, rendering
and the built-in profiles against realistic Debian/Ubuntu/Alpine/RHEL/python/node paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimmer.errors import ProfileError, UsageError
from slimmer.profiles import (
    CONTENT_KINDS,
    ENTRY_KINDS,
    Match,
    Matcher,
    Profile,
    Rule,
    builtin_profiles,
    compile_glob,
    load_profile_file,
    render_profile,
    render_profile_list,
    select_profiles,
)

BUILTIN_NAMES = ["caches", "compilers", "cuda-devel", "docs", "foreign-backends", "locales",
                 "model-weights", "pycache", "python-headers", "tests", "triton-compile"]
MiB = 1024 * 1024


def profile(name: str, *rules: Rule, default: bool = False) -> Profile:
    return Profile(name=name, description=f"{name} test profile", rules=rules, default=default)


def rule(rule_id: str, strip: tuple[str, ...] = (), keep: tuple[str, ...] = (), **kw: object) -> Rule:
    return Rule(id=rule_id, profile=rule_id.split(".")[0], description="", strip=strip, keep=keep,
                **kw)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str, name: str = "p.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def all_builtins() -> Matcher:
    return Matcher(list(builtin_profiles().values()))


def matched_rule(m: Matcher, path: str, kind: str = "file", size: int = 0,
                 content: str | None = None) -> str | None:
    """The id of the rule that strips ``path``, or None if it is not stripped."""
    found = m.match(path, kind, size, content)
    if found is None or found.kept_by is not None:
        return None
    return found.rule.id


# --- built-in profiles --------------------------------------------------------------------------

def test_every_builtin_profile_loads() -> None:
    profiles = builtin_profiles()
    assert list(profiles) == BUILTIN_NAMES
    for name, p in profiles.items():
        assert p.name == name and p.source == "builtin" and p.description and p.rules
        for r in p.rules:
            assert r.id.startswith(name + ".") and r.profile == name
            assert r.strip or r.keep
            for glob in r.strip + r.keep:
                compile_glob(glob)
    assert {n for n, p in profiles.items() if p.default} == {"caches", "docs"}
    assert profiles["pycache"].warning and "cold start" in profiles["pycache"].warning


def test_builtin_rule_ids_are_unique_across_profiles(all_builtins: Matcher) -> None:
    ids = [r.id for r in all_builtins.rules]
    assert len(ids) == len(set(ids))


def test_builtin_profiles_returns_a_fresh_dict() -> None:
    first = builtin_profiles()
    first.pop("docs")
    assert "docs" in builtin_profiles()


# --- select_profiles ----------------------------------------------------------------------------

def names(profiles: list[Profile]) -> list[str]:
    return [p.name for p in profiles]


def test_select_defaults() -> None:
    assert names(select_profiles([])) == ["caches", "docs"]
    assert names(select_profiles(["default"])) == ["caches", "docs"]
    assert names(select_profiles([" , "])) == ["caches", "docs"]


def test_select_none() -> None:
    assert select_profiles(["none"]) == []
    assert names(select_profiles(["none", "pycache"])) == ["pycache"]


def test_select_comma_lists_are_ordered_and_deduplicated() -> None:
    assert names(select_profiles(["docs,caches", "docs"])) == ["caches", "docs"]
    assert names(select_profiles(["tests, compilers", "default"])) == [
        "caches", "compilers", "docs", "tests"]


def test_select_unknown_name_lists_known_names() -> None:
    with pytest.raises(ProfileError) as exc:
        select_profiles(["caches,doc"])
    message = str(exc.value)
    assert "'doc'" in message and "\n" not in message
    for name in BUILTIN_NAMES + ["none"]:
        assert name in message


def test_select_adds_profile_files(tmp_path: Path) -> None:
    path = write(tmp_path, """
        name = "mine"
        description = "my rules"
        [[rule]]
        id = "mine.data"
        strip = ["/data/**"]
    """)
    selected = select_profiles(["none"], [path, path])
    assert names(selected) == ["mine"] and selected[0].source == path
    assert names(select_profiles([], [path])) == ["caches", "docs", "mine"]


def test_select_rejects_profile_file_reusing_a_builtin_name(tmp_path: Path) -> None:
    path = write(tmp_path, """
        name = "docs"
        description = "my docs"
        [[rule]]
        id = "docs.x"
        strip = ["/x"]
    """)
    with pytest.raises(ProfileError, match="docs is already defined"):
        select_profiles([], [path])


# --- profile files ------------------------------------------------------------------------------

GOOD = """
name = "mine"
description = "my rules"
warning = "be careful"

[[rule]]
id = "mine.logs"
description = "app logs"
strip = ["/srv/app/*.log"]
keep = ["/srv/app/keep.log"]
types = ["file"]

[[rule]]
id = "mine.big"
strip = ["/**"]
content = ["gguf", "onnx"]
min_size = "1.5 MiB"
types = ["file"]
"""


def test_load_profile_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    [p] = load_profile_file(path)
    assert p.name == "mine" and p.source == path and p.warning == "be careful" and not p.default
    logs, big = p.rules
    assert logs == Rule(id="mine.logs", profile="mine", description="app logs",
                        strip=("/srv/app/*.log",), keep=("/srv/app/keep.log",), content=(),
                        min_size=0, types=("file",))
    assert big.content == ("gguf", "onnx") and big.min_size == 3 * MiB // 2
    assert big.types == ("file",)


def test_load_profile_file_with_several_profiles(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [[profile]]
        name = "one"
        description = "first"
        [[profile.rule]]
        id = "one.a"
        strip = ["/a"]

        [[profile]]
        name = "two"
        description = "second"
        [[profile.rule]]
        id = "two.b"
        keep = ["/b"]
    """)
    assert names(load_profile_file(path)) == ["one", "two"]


@pytest.mark.parametrize("text, message", [
    ("name = ", "invalid TOML"),
    ('name = "x"\ndescription = "d"\ncolour = 1\n[[rule]]\nid = "x.a"\nstrip = ["/a"]',
     "unknown key.*colour"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\nstirp = ["/b"]',
     "rule x.a: unknown key.*stirp"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "y.a"\nstrip = ["/a"]', "rule y.a: id must"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x."\nstrip = ["/a"]', "rule x.: id must"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = "/a"', "list of strings"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a//b"]', "bad glob"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a/[bc"]', "unclosed"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a/b**"]', "whole path segment"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a/"]', "trailing"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\nmin_size = "1 XB"',
     "not a size"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\nmin_size = -1',
     "negative size"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\nmin_size = true',
     "not a size"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\ncontent = ["jpeg"]',
     "unknown content kind"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\ntypes = ["socket"]',
     "'types'"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\ntypes = []', "'types'"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\ncontent = ["gguf"]\n'
     'types = ["dir"]', "only match files"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"', "at least one 'strip' or 'keep'"),
    ('name = "x"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]\n'
     '[[rule]]\nid = "x.a"\nstrip = ["/b"]', "duplicate rule id x.a"),
    ('name = "x"\ndescription = "d"', "needs at least one"),
    ('name = "x"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]', "description"),
    ('name = "X Y"\ndescription = "d"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]', "'name'"),
    ('name = "none"\ndescription = "d"\n[[rule]]\nid = "none.a"\nstrip = ["/a"]', "reserved"),
    ('name = "x"\ndescription = "d"\ndefault = "yes"\n[[rule]]\nid = "x.a"\nstrip = ["/a"]',
     "'default'"),
    ('rule = 3\nname = "x"\ndescription = "d"', "needs at least one"),
])
def test_malformed_profile_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError, match=message) as exc:
        load_profile_file(path)
    assert str(exc.value).startswith(path) and "\n" not in str(exc.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile file .*nope.toml"):
        load_profile_file(str(tmp_path / "nope.toml"))


# --- glob semantics -----------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, path, expected", [
    # anchored
    ("/usr/bin/gcc", "/usr/bin/gcc", True),
    ("/usr/bin/gcc", "/usr/local/usr/bin/gcc", False),
    ("/usr/bin/gcc", "/usr/bin/gcc-12", False),
    ("/usr/bin", "/usr/bin/gcc", False),
    # basename at any depth
    ("*.a", "/usr/lib/x86_64-linux-gnu/libc.a", True),
    ("*.a", "/libc.a", True),
    ("*.a", "/usr/lib/libc.a.1", False),
    ("*.a", "/usr/lib/x.a/file", False),
    ("__pycache__", "/app/pkg/__pycache__", True),
    ("__pycache__", "/app/pkg/__pycache__/x.pyc", False),
    # floating multi-segment patterns
    ("node_modules/*/test", "/app/node_modules/lodash/test", True),
    ("node_modules/*/test", "/node_modules/lodash/test", True),
    ("node_modules/*/test", "/app/node_modules/lodash/lib/test", False),
    ("node_modules/*/test", "/app/my_node_modules/lodash/test", False),
    # * and ? stay inside one segment
    ("/usr/*/gcc", "/usr/bin/gcc", True),
    ("/usr/*/gcc", "/usr/local/bin/gcc", False),
    ("/usr/bin/gcc-?", "/usr/bin/gcc-9", True),
    ("/usr/bin/gcc-?", "/usr/bin/gcc-12", False),
    ("/a/*", "/a/.hidden", True),
    ("/a/*", "/a", False),
    # classes
    ("/usr/bin/gcc-[0-9]*", "/usr/bin/gcc-12", True),
    ("/usr/bin/gcc-[0-9]*", "/usr/bin/gcc-ar", False),
    ("/x/[!.]*", "/x/file", True),
    ("/x/[!.]*", "/x/.file", False),
    ("/x/[^.]*", "/x/.file", False),
    ("/x/[]]", "/x/]", True),
    ("/x/[Ll]icense", "/x/License", True),
    ("/x/[Ll]icense", "/x/LICENSE", False),
    ("/x/[!a]", "/x//", False),
    # escapes
    (r"/x/\*", "/x/*", True),
    (r"/x/\*", "/x/a", False),
    # ** in the middle: zero or more segments
    ("/a/**/b", "/a/b", True),
    ("/a/**/b", "/a/x/b", True),
    ("/a/**/b", "/a/x/y/b", True),
    ("/a/**/b", "/a/xb", False),
    ("/a/**/b", "/ab", False),
    ("/**/copyright", "/copyright", True),
    ("/usr/share/doc/**/copyright", "/usr/share/doc/bash/copyright", True),
    ("/usr/share/doc/**/copyright", "/usr/share/doc/copyright", True),
    # ** at the end: strictly below
    ("/usr/share/doc/**", "/usr/share/doc", False),
    ("/usr/share/doc/**", "/usr/share/doc/bash", True),
    ("/usr/share/doc/**", "/usr/share/doc/bash/README.gz", True),
    ("/usr/share/doc/**", "/usr/share/docs/x", False),
    ("/tmp/**", "/tmp", False),
    ("/tmp/**", "/tmp/x", True),
    ("/**", "/etc/passwd", True),
    ("**", "/etc/passwd", True),
    ("/a/**/**/b", "/a/b", True),
    # case-sensitive, newline-safe
    ("/usr/bin/GCC", "/usr/bin/gcc", False),
    ("/a/*", "/a/line\nbreak", True),
])
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert compile_glob(pattern).matches(path) is expected
    m = Matcher([profile("t", rule("t.r", strip=(pattern,)))])
    assert (m.match(path, "file") is not None) is expected


@pytest.mark.parametrize("pattern", [
    "", "/", "/a/", "//a", "/a//b", "/a/./b", "/a/../b", "a**", "/a/**b", "/x/[a", "/x/[z-a]",
    "/x\\",
])
def test_bad_globs(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_glob(pattern)


def test_glob_bucketing_facts() -> None:
    g = compile_glob("/usr/lib/*/pkgconfig/**")
    assert g.prefix == ("usr", "lib") and g.basename is None and g.ext is None
    assert compile_glob("*.tar.gz").ext == "gz"
    assert compile_glob("/usr/share/doc/**/copyright").basename == "copyright"
    assert compile_glob("*.py[co]").ext is None
    assert compile_glob("/a/\\*.x").basename == "*.x"


SEGMENT = st.text(alphabet="ab.-_xyz", min_size=1, max_size=5).filter(lambda s: s not in (".", ".."))
PATHS = st.lists(SEGMENT, min_size=1, max_size=6).map(lambda segs: "/" + "/".join(segs))
GLOB_SEGMENT = st.one_of(SEGMENT, st.sampled_from(["*", "?", "a*", "*.x", "[ab]*", "[!a]", "**"]))
GLOBS = st.tuples(st.booleans(), st.lists(GLOB_SEGMENT, min_size=1, max_size=5)).map(
    lambda t: ("/" if t[0] else "") + "/".join(t[1]))


def reference_match(glob: str, path: str) -> bool:
    """Straightforward recursive matcher over segments, the specification in code."""
    segs = path.split("/")[1:]
    pats = glob.lstrip("/").split("/")
    if not glob.startswith("/") and pats[0] != "**":
        pats = ["**"] + pats

    def seg_ok(pat: str, seg: str) -> bool:
        regex = ""
        i = 0
        while i < len(pat):
            c = pat[i]
            if c == "*":
                regex += "[^/]*"
            elif c == "?":
                regex += "[^/]"
            elif c == "[":
                j = pat.index("]", i + 2 if pat[i + 1] in "!^" else i + 1)
                body = pat[i + 1:j]
                regex += "[^" + re.escape(body[1:]) + "]" if body[:1] in "!^" else \
                    "[" + re.escape(body) + "]"
                i = j
            else:
                regex += re.escape(c)
            i += 1
        return re.fullmatch(regex, seg, re.DOTALL) is not None

    def rec(pi: int, si: int) -> bool:
        if pi == len(pats):
            return si == len(segs)
        if pats[pi] == "**":
            if pi == len(pats) - 1:
                return si < len(segs)  # one or more at the end
            return any(rec(pi + 1, k) for k in range(si, len(segs) + 1))
        return si < len(segs) and seg_ok(pats[pi], segs[si]) and rec(pi + 1, si + 1)

    return rec(0, 0)


@settings(max_examples=400, deadline=None)
@given(GLOBS, PATHS)
def test_glob_matches_reference(glob: str, path: str) -> None:
    assert compile_glob(glob).matches(path) is reference_match(glob, path)


@settings(max_examples=150, deadline=None)
@given(st.lists(GLOBS, min_size=1, max_size=8), st.lists(PATHS, min_size=1, max_size=10))
def test_matcher_returns_first_matching_rule(globs: list[str], paths: list[str]) -> None:
    rules = [rule(f"t.r{i}", strip=(g,)) for i, g in enumerate(globs)]
    m = Matcher([profile("t", *rules)])
    for path in paths:
        expected = next((r.id for r in rules if reference_match(r.strip[0], path)), None)
        got = m.match(path, "file")
        assert (got.rule.id if got else None) == expected


# --- matcher behaviour --------------------------------------------------------------------------

def test_keep_beats_strip_across_profiles() -> None:
    a = profile("a", rule("a.all", strip=("/srv/**",)))
    b = profile("b", rule("b.keep", keep=("/srv/data/**",)),
                rule("b.other", strip=("/opt/**",)))
    m = Matcher([a, b])
    got = m.match("/srv/data/x", "file")
    assert got is not None and got.rule.id == "a.all" and got.kept_by is not None
    assert got.kept_by.id == "b.keep" and not got.stripped
    got = m.match("/srv/cache/x", "file")
    assert got is not None and got.stripped and got.kept_by is None
    assert m.match("/etc/passwd", "file") is None


def test_user_strip_and_keep_globs() -> None:
    docs = builtin_profiles()["docs"]
    m = Matcher([docs], strip_globs=["/srv/*.log", "/usr/share/doc/**/copyright"],
                keep_globs=["/usr/share/doc/bash/**", "/srv/keep.log"])
    ids = [r.id for r in m.rules]
    assert ids[-4:] == ["user.strip.1", "user.strip.2", "user.keep.1", "user.keep.2"]
    got = m.match("/srv/app.log", "file")
    assert got is not None and got.rule.id == "user.strip.1" and got.stripped
    got = m.match("/srv/keep.log", "file")
    assert got is not None and got.kept_by is not None and got.kept_by.id == "user.keep.2"
    # the user keep beats the profile's strip, and is reported ahead of the profile's own keep
    got = m.match("/usr/share/doc/bash/copyright", "file")
    assert got is not None and got.rule.id == "docs.usr-share-doc"
    assert got.kept_by is not None and got.kept_by.id == "user.keep.1"
    got = m.match("/usr/share/doc/bash/README", "file")
    assert got is not None and got.kept_by is not None and got.kept_by.id == "user.keep.1"
    # a profile keep beats a user strip
    got = m.match("/usr/share/doc/zsh/copyright", "file")
    assert got is not None and got.kept_by is not None and got.kept_by.id == "docs.usr-share-doc"


def test_user_bad_glob_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--strip"):
        Matcher([], strip_globs=["/a//b"])
    with pytest.raises(UsageError, match="--keep"):
        Matcher([], keep_globs=["x**"])


def test_duplicate_rule_ids_are_rejected() -> None:
    p = profile("a", rule("a.x", strip=("/a",)))
    with pytest.raises(ProfileError, match="a.x"):
        Matcher([p, p])


def test_rule_order_is_profile_order_then_file_order() -> None:
    a = profile("a", rule("a.one", strip=("/x/**",)), rule("a.two", strip=("*.txt",)))
    b = profile("b", rule("b.one", strip=("/x/y/*.txt",)))
    got = Matcher([a, b]).match("/x/y/z.txt", "file")
    assert got is not None and got.rule.id == "a.one"
    got = Matcher([b, a]).match("/x/y/z.txt", "file")
    assert got is not None and got.rule.id == "b.one"


def test_types_restrict_strip_globs_but_not_keep_globs() -> None:
    p = profile("a", rule("a.files", strip=("/x/**",), types=("file",)),
                rule("a.dirs", strip=("/x/**",), keep=("/x/keep",), types=("dir",)))
    m = Matcher([p])
    got = m.match("/x/f", "file")
    assert got is not None and got.rule.id == "a.files"
    got = m.match("/x/d", "dir")
    assert got is not None and got.rule.id == "a.dirs"
    assert m.match("/x/l", "symlink") is None
    got = m.match("/x/keep", "file")
    assert got is not None and got.rule.id == "a.files" and got.kept_by is not None


def test_unknown_kind_is_an_error() -> None:
    m = Matcher([profile("a", rule("a.x", strip=("/x",)))])
    with pytest.raises(ValueError, match="kind"):
        m.match("/x", "socket")


def test_content_and_size_conditions() -> None:
    p = profile("w", rule("w.st", strip=("/**",), content=("safetensors",), min_size=MiB,
                          types=("file",)),
                rule("w.big", strip=("/data/**",), min_size=10 * MiB, types=("file",)),
                rule("w.any", strip=("/data/small/**",)))
    m = Matcher([p])
    assert m.needs_content() and m.min_content_size == MiB
    assert matched_rule(m, "/models/x.bin", "file", 2 * MiB, "safetensors") == "w.st"
    assert matched_rule(m, "/models/x.bin", "file", MiB - 1, "safetensors") is None
    assert matched_rule(m, "/models/x.bin", "file", 2 * MiB, "gguf") is None
    assert matched_rule(m, "/models/x.bin", "file", 2 * MiB, None) is None
    assert matched_rule(m, "/models/x.bin", "hardlink", 2 * MiB, "safetensors") is None  # types
    assert matched_rule(m, "/models/x", "dir", 2 * MiB, "safetensors") is None
    assert matched_rule(m, "/data/x", "file", 20 * MiB) == "w.big"
    assert matched_rule(m, "/data/x", "file", 20 * MiB, "safetensors") == "w.st"
    assert matched_rule(m, "/data/x", "file", 1024) is None
    assert matched_rule(m, "/data/small/x", "file", 1024) == "w.any"
    assert matched_rule(m, "/data/small/x", "file", 20 * MiB) == "w.big"


def test_content_rules_apply_to_hardlinks_when_typed() -> None:
    p = profile("w", rule("w.st", strip=("/**",), content=("gguf",), min_size=MiB,
                          types=("file", "hardlink")))
    m = Matcher([p])
    assert matched_rule(m, "/models/link.gguf", "hardlink", 2 * MiB, "gguf") == "w.st"
    assert matched_rule(m, "/models/link.gguf", "hardlink", 0, None) is None
    assert matched_rule(m, "/models/link.gguf", "symlink", 2 * MiB, "gguf") is None


def test_matcher_without_content_rules() -> None:
    m = Matcher(select_profiles([]))
    assert not m.needs_content() and m.min_content_size == 0


def test_match_results_are_shared_and_comparable() -> None:
    m = Matcher([profile("a", rule("a.x", strip=("/x/**",), keep=("/x/k",)))])
    assert m.match("/x/1", "file") == Match(m.rules[0])
    assert m.match("/x/k", "file") is m.match("/x/k", "file")
    assert "a.x" in repr(m.match("/x/k", "file"))


def test_empty_matcher() -> None:
    m = Matcher([])
    assert m.rules == () and m.match("/usr/bin/gcc", "file") is None


# --- rendering ----------------------------------------------------------------------------------

def test_render_profile_list() -> None:
    text = render_profile_list(builtin_profiles())
    lines = text.splitlines()
    assert len(lines) == len(BUILTIN_NAMES)
    by_name = {line.split()[0]: line for line in lines}
    assert set(by_name) == set(BUILTIN_NAMES)
    assert "default" in by_name["docs"].split()[1] and "opt-in" in by_name["pycache"].split()[1]
    assert "slower cold start" in by_name["pycache"]
    assert render_profile_list({}) == ""


def test_render_profile_shows_every_rule() -> None:
    for p in builtin_profiles().values():
        text = render_profile(p)
        for r in p.rules:
            assert r.id in text
            for glob in r.strip + r.keep:
                assert glob in text
    text = render_profile(builtin_profiles()["model-weights"])
    assert "content: safetensors" in text and "min size: 1 MiB" in text
    assert "types: file, hardlink" in text


# --- realistic paths per built-in profile ------------------------------------------------------

CASES: dict[str, list[tuple[str, str, str | None]]] = {
    # (path, kind, expected rule id or None = must not be stripped)
    "caches": [
        ("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "file", "caches.apt-lists"),
        ("/var/lib/apt/lists/lock", "file", "caches.apt-lists"),
        ("/var/lib/apt/lists/partial", "dir", None),
        ("/var/lib/apt/lists", "dir", None),
        ("/var/cache/apt/pkgcache.bin", "file", "caches.apt-archives"),
        ("/var/cache/apt/archives/curl_7.88.1-10_amd64.deb", "file", "caches.apt-archives"),
        ("/var/cache/apt/archives/partial", "dir", None),
        ("/var/cache/apk/APKINDEX.5022a8a2.tar.gz", "file", "caches.apk"),
        ("/var/cache/dnf/baseos-044cae74d71fe9ea/repodata/repomd.xml", "file", "caches.dnf"),
        ("/var/cache/yum/metadata/ubi-8-baseos/repomd.xml", "file", "caches.dnf"),
        ("/root/.cache/pip/http-v2/a/b/c/d/e/abcdef", "file", "caches.pip"),
        ("/home/app/.cache/pip/wheels/ab/cd/x.whl", "file", "caches.pip"),
        ("/root/.cache/uv/archive-v0/x/numpy/__init__.py", "file", "caches.uv"),
        ("/root/.cache/pypoetry/cache/repositories/pypi/x", "file", "caches.poetry"),
        ("/root/.cache/pypoetry/virtualenvs/app-py3.11/bin/python", "symlink", None),
        ("/root/.npm/_cacache/content-v2/sha512/ab/cd/x", "file", "caches.npm"),
        ("/home/node/.npm/_logs/2024-01-01-debug-0.log", "file", "caches.npm"),
        ("/usr/local/share/.cache/yarn/v6/npm-lodash-4.17.21/package.json", "file", "caches.yarn"),
        ("/root/.yarn/berry/cache/lodash-npm-4.17.21-6382451519-eb835a2e51.zip", "file", None),
        ("/root/.cache/go-build/ab/abcdef-d", "file", "caches.go-build"),
        ("/root/.cache/huggingface/hub/models--gpt2/blobs/x", "file", None),
        ("/tmp", "dir", None),
        ("/tmp/x", "file", "caches.tmp"),
        ("/tmp/build/dir", "dir", "caches.tmp"),
        ("/var/tmp", "dir", None),
        ("/var/tmp/systemd-private", "dir", "caches.tmp"),
        ("/var/log/dpkg.log", "file", "caches.logs"),
        ("/var/log/apt/history.log", "file", "caches.logs"),
        ("/var/log/nginx", "dir", None),
        ("/var/log/nginx/access.log", "symlink", None),
        ("/var/cache/debconf/config.dat", "file", None),
        ("/var/lib/dpkg/status", "file", None),
        ("/etc/apt/sources.list", "file", None),
    ],
    "docs": [
        ("/usr/share/doc/bash/README.gz", "file", "docs.usr-share-doc"),
        ("/usr/share/doc/bash/copyright", "file", None),
        ("/usr/share/doc/bash", "dir", "docs.usr-share-doc"),
        ("/usr/share/doc", "dir", None),
        ("/usr/share/doc/libgcc-s1", "symlink", None),
        ("/usr/share/doc/python3/changelog.gz", "symlink", "docs.usr-share-doc-links"),
        ("/usr/share/doc/openssl/LICENSE.txt", "file", None),
        ("/usr/share/doc/foo/license", "file", None),
        ("/usr/share/doc/foo/Licence.md", "file", None),
        ("/usr/share/doc/foo/COPYING.LIB", "file", None),
        ("/usr/share/doc/foo/NOTICE", "file", None),
        ("/usr/share/doc/git/contrib/README", "file", "docs.usr-share-doc"),
        ("/usr/share/man/man1/ls.1.gz", "file", "docs.man"),
        ("/usr/share/man/man1/editor.1.gz", "symlink", "docs.man"),
        ("/usr/share/man/man1", "dir", None),
        ("/usr/share/man/de/man8/apt.8.gz", "file", "docs.man"),
        ("/usr/local/share/man/man1/node.1", "file", "docs.man"),
        ("/usr/share/info/coreutils.info.gz", "file", "docs.info"),
        ("/usr/share/info/dir", "file", "docs.info"),
        ("/usr/share/gtk-doc/html/glib/index.html", "file", "docs.gtk-doc"),
        ("/usr/share/doc-base/bash", "file", "docs.doc-base"),
        ("/usr/share/lintian/overrides/bash", "file", "docs.lintian"),
        ("/usr/share/licenses/bash/COPYING", "file", None),
        ("/usr/share/zoneinfo/Europe/Berlin", "file", None),
        ("/usr/share/docs/x", "file", None),
    ],
    "compilers": [
        ("/usr/bin/gcc", "symlink", "compilers.gcc"),
        ("/usr/bin/gcc-12", "symlink", "compilers.gcc"),
        ("/usr/bin/x86_64-linux-gnu-gcc-12", "file", "compilers.gcc"),
        ("/usr/bin/x86_64-linux-gnu-g++-12", "file", "compilers.gcc"),
        ("/usr/bin/x86_64-linux-gnu-cpp-12", "file", "compilers.gcc"),
        ("/usr/bin/x86_64-alpine-linux-musl-gcc-13.2.1", "file", "compilers.gcc"),
        ("/usr/bin/x86_64-redhat-linux-gcc", "file", "compilers.gcc"),
        ("/usr/bin/gcc-ar-12", "symlink", "compilers.gcc"),
        ("/usr/bin/g++", "symlink", "compilers.gcc"),
        ("/usr/bin/c++", "symlink", "compilers.gcc"),
        ("/usr/bin/cc", "symlink", "compilers.gcc"),
        ("/usr/bin/cpp", "symlink", "compilers.gcc"),
        ("/usr/bin/c89-gcc", "file", "compilers.gcc"),
        ("/usr/local/bin/gcc", "file", "compilers.gcc"),
        ("/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "file", "compilers.gcc"),
        ("/usr/lib/gcc/x86_64-linux-gnu/12/libgcc.a", "file", "compilers.gcc"),
        ("/usr/lib/gcc/x86_64-linux-gnu/12/crtbegin.o", "file", "compilers.gcc"),
        ("/usr/lib/gcc", "dir", "compilers.gcc"),
        ("/usr/libexec/gcc/x86_64-redhat-linux/11/cc1plus", "file", "compilers.gcc"),
        ("/usr/libexec/gcc/x86_64-alpine-linux-musl/13.2.1/cc1", "file", "compilers.gcc"),
        ("/usr/bin/clang", "symlink", "compilers.llvm"),
        ("/usr/bin/clang-14", "symlink", "compilers.llvm"),
        ("/usr/bin/clang++-14", "symlink", "compilers.llvm"),
        ("/usr/bin/llvm-config-14", "symlink", "compilers.llvm"),
        ("/usr/lib/llvm-14/bin/clang", "file", "compilers.llvm"),
        ("/usr/lib/clang/14/include/stddef.h", "file", "compilers.llvm"),
        ("/usr/bin/as", "file", "compilers.binutils"),
        ("/usr/bin/ld", "symlink", "compilers.binutils"),
        ("/usr/bin/ld.bfd", "file", "compilers.binutils"),
        ("/usr/bin/ld.gold", "file", "compilers.binutils"),
        ("/usr/bin/x86_64-linux-gnu-ld.bfd", "file", "compilers.binutils"),
        ("/usr/bin/x86_64-linux-gnu-objdump", "file", "compilers.binutils"),
        ("/usr/bin/objcopy", "file", "compilers.binutils"),
        ("/usr/bin/strip", "file", "compilers.binutils"),
        ("/usr/bin/ar", "file", "compilers.binutils"),
        ("/usr/bin/x86_64-alpine-linux-musl-ranlib", "file", "compilers.binutils"),
        ("/usr/x86_64-alpine-linux-musl/bin/ld", "file", "compilers.binutils"),
        ("/usr/include/stdio.h", "file", "compilers.headers"),
        ("/usr/include", "dir", "compilers.headers"),
        ("/usr/local/include/python3.11/Python.h", "file", "compilers.headers"),
        ("/usr/lib/x86_64-linux-gnu/libc.a", "file", "compilers.static-libs"),
        ("/usr/local/lib/python3.11/config-3.11-x86_64-linux-gnu/libpython3.11.a", "file",
         "compilers.static-libs"),
        ("/usr/lib/x86_64-linux-gnu/libfoo.a", "symlink", "compilers.static-libs"),
        ("/srv/archive.a", "dir", None),
        ("/usr/bin/make", "file", "compilers.build-tools"),
        ("/usr/bin/cmake", "file", "compilers.build-tools"),
        ("/usr/share/cmake-3.25/Modules/FindPython.cmake", "file", "compilers.build-tools"),
        ("/usr/lib/x86_64-linux-gnu/pkgconfig/libssl.pc", "file", "compilers.build-tools"),
        ("/usr/lib/x86_64-linux-gnu/cmake/Qt5/Qt5Config.cmake", "file", "compilers.build-tools"),
        ("/usr/share/pkgconfig/bash-completion.pc", "file", "compilers.build-tools"),
        ("/usr/bin/pkg-config", "file", "compilers.build-tools"),
        ("/usr/bin/x86_64-linux-gnu-pkg-config", "file", "compilers.build-tools"),
        ("/usr/local/rustup/toolchains/1.75.0-x86_64-unknown-linux-gnu/bin/rustc", "file",
         "compilers.rustup"),
        ("/root/.rustup/settings.toml", "file", "compilers.rustup"),
        ("/home/dev/.rustup/toolchains/x/lib/librustc_driver.so", "file", "compilers.rustup"),
        ("/usr/local/cargo/bin/cargo", "hardlink", "compilers.cargo"),
        ("/usr/local/cargo/bin/rustc", "hardlink", "compilers.cargo"),
        ("/usr/local/cargo/registry/cache/index.crates.io-x/serde-1.0.0.crate", "file",
         "compilers.cargo"),
        ("/root/.cargo/git/checkouts/x/y", "file", "compilers.cargo"),
        ("/usr/local/cargo/bin/ripgrep-app", "file", None),
        ("/root/.cargo/bin/my-server", "file", None),
        ("/usr/local/go/bin/go", "file", "compilers.go"),
        ("/usr/local/go/src/fmt/print.go", "file", "compilers.go"),
        ("/usr/lib/go-1.19/bin/go", "file", "compilers.go"),
        ("/usr/lib/golang/bin/go", "file", "compilers.go"),
        ("/usr/bin/go", "symlink", "compilers.go"),
        ("/go/pkg/mod/github.com/x/y@v1.0.0/z.go", "file", "compilers.go-modules"),
        ("/go/bin/myapp", "file", None),
        ("/root/.cache/node-gyp/20.11.0/include/node/node.h", "file", "compilers.node-gyp"),
        # runtime pieces that must stay
        ("/usr/lib/x86_64-linux-gnu/libgcc_s.so.1", "file", None),
        ("/lib/x86_64-linux-gnu/libgcc_s.so.1", "file", None),
        ("/usr/lib/libgcc_s.so.1", "file", None),
        ("/lib64/libgcc_s.so.1", "file", None),
        ("/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "file", None),
        ("/usr/lib/x86_64-linux-gnu/libgomp.so.1", "symlink", None),
        ("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", "file", None),
        ("/usr/lib/x86_64-linux-gnu/libssl.so", "symlink", None),
        ("/usr/lib/x86_64-linux-gnu/ImageMagick-6.9.11/modules-Q16/coders/png.la", "file", None),
        ("/usr/bin/python3.11", "file", None),
        ("/usr/lib/python3.11/os.py", "file", None),
        ("/usr/local/bin/python3", "symlink", None),
        ("/usr/bin/ldd", "file", None),
        ("/usr/bin/ld.so", "symlink", None),
        ("/sbin/ldconfig", "file", None),
        ("/usr/bin/ccache", "file", None),
        ("/usr/bin/cpio", "file", None),
        ("/usr/bin/gzip", "file", None),
        ("/usr/bin/node", "file", None),
        ("/usr/bin/perl", "file", None),
        ("/usr/bin/bash", "file", None),
        ("/usr/bin/git", "file", None),
        ("/usr/bin/asciinema", "file", None),
        ("/usr/bin/strings-wrapper", "file", None),
        ("/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so", "file", None),
        ("/usr/local/lib/python3.11/site-packages/numpy/core/include/numpy/ndarrayobject.h",
         "file", None),
        ("/etc/alternatives/cc", "symlink", None),
    ],
    "pycache": [
        ("/usr/lib/python3.11/__pycache__/os.cpython-311.pyc", "file", "pycache.pycache"),
        ("/usr/lib/python3.11/__pycache__", "dir", "pycache.pycache"),
        ("/app/pkg/__pycache__/mod.cpython-311.opt-1.pyc", "file", "pycache.pycache"),
        ("/app/pkg/mod.pyc", "file", None),
        ("/app/pkg/mod.py", "file", None),
    ],
    "locales": [
        ("/usr/share/locale/de/LC_MESSAGES/coreutils.mo", "file", "locales.translations"),
        ("/usr/share/locale/en_GB/LC_MESSAGES/bash.mo", "file", "locales.translations"),
        ("/usr/share/locale/locale.alias", "file", None),
        ("/usr/share/i18n/charmaps/UTF-8.gz", "file", "locales.i18n"),
        ("/usr/share/i18n/locales/de_DE", "file", "locales.i18n"),
        ("/usr/lib/locale/locale-archive", "file", "locales.compiled"),
        ("/usr/lib/locale/de_DE.utf8/LC_CTYPE", "file", "locales.compiled"),
        ("/usr/lib/locale/C.utf8/LC_CTYPE", "file", None),
        ("/usr/lib/locale/C.UTF-8/LC_MESSAGES/SYS_LC_MESSAGES", "file", None),
        ("/usr/lib/locale/C.utf8", "dir", None),
        ("/usr/lib/x86_64-linux-gnu/gconv/gconv-modules", "file", None),
    ],
    "tests": [
        ("/usr/local/lib/python3.11/site-packages/numpy/core/tests/test_umath.py", "file",
         "tests.python-packages"),
        ("/usr/local/lib/python3.11/site-packages/pandas/tests", "dir", "tests.python-packages"),
        ("/usr/lib/python3/dist-packages/scipy/sparse/linalg/tests/data/x.npz", "file",
         "tests.python-packages"),
        ("/app/.venv/lib/python3.12/site-packages/sklearn/tests/test_base.py", "file",
         "tests.python-packages"),
        ("/usr/local/lib/python3.11/site-packages/django/test/signals.py", "file", None),
        ("/usr/local/lib/python3.11/site-packages/numpy/testing/__init__.py", "file", None),
        ("/usr/local/lib/python3.11/site-packages/tests/__init__.py", "file", None),
        ("/usr/local/lib/python3.11/test/test_os.py", "file", "tests.python-stdlib"),
        ("/usr/local/lib/python3.11/test", "dir", "tests.python-stdlib"),
        ("/usr/lib/python3.11/test/support/__init__.py", "file", "tests.python-stdlib"),
        ("/usr/lib64/python3.9/test/test_sys.py", "file", "tests.python-stdlib"),
        ("/usr/local/lib/python3.11/ctypes/test/test_bytes.py", "file", "tests.python-stdlib"),
        ("/usr/local/lib/python3.11/unittest/test/test_case.py", "file", "tests.python-stdlib"),
        ("/usr/local/lib/python3.11/idlelib/idle_test/htest.py", "file", "tests.python-stdlib"),
        ("/usr/local/lib/python3.11/unittest/case.py", "file", None),
        ("/app/node_modules/lodash/test/test.js", "file", "tests.node-modules"),
        ("/app/node_modules/qs/test", "dir", "tests.node-modules"),
        ("/app/node_modules/@babel/core/test/fixtures/x.js", "file", "tests.node-modules"),
        ("/app/node_modules/a/node_modules/b/tests/x.js", "file", "tests.node-modules"),
        ("/app/node_modules/.pnpm/b@1.0.0/node_modules/b/test/x.js", "file", "tests.node-modules"),
        ("/app/node_modules/jest-x/src/__tests__/a.test.js", "file", "tests.node-modules"),
        ("/app/node_modules/test/index.js", "file", None),
        ("/app/node_modules/@scope/test/index.js", "file", None),
        ("/app/node_modules/.bin/test", "symlink", None),
        ("/app/node_modules/lodash/lodash.js", "file", None),
        ("/app/test/app.test.js", "file", None),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_builtin_profile_paths(name: str) -> None:
    m = Matcher([builtin_profiles()[name]])
    wrong = [(path, kind, expected, matched_rule(m, path, kind))
             for path, kind, expected in CASES[name] if matched_rule(m, path, kind) != expected]
    assert not wrong


@pytest.mark.parametrize("name", sorted(CASES))
def test_builtin_profile_paths_with_every_profile_selected(name: str,
                                                           all_builtins: Matcher) -> None:
    """Positives stay positives and negatives of a profile are not hit by its own rules when all
    profiles are selected (other profiles may legitimately strip them)."""
    for path, kind, expected in CASES[name]:
        got = all_builtins.match(path, kind)
        if expected is None:
            assert got is None or got.kept_by is not None or got.rule.profile != name, path
        else:
            assert got is not None and got.kept_by is None, path


def test_model_weights_profile() -> None:
    m = Matcher([builtin_profiles()["model-weights"]])
    assert m.needs_content() and m.min_content_size == MiB
    expected = {"safetensors": "model-weights.safetensors", "pytorch-zip": "model-weights.pytorch",
                "pytorch-legacy": "model-weights.pytorch", "gguf": "model-weights.gguf",
                "onnx": "model-weights.onnx", "hdf5": "model-weights.hdf5",
                "numpy": "model-weights.numpy", "numpy-zip": "model-weights.numpy",
                "pickle": "model-weights.pickle"}
    assert set(expected) == set(CONTENT_KINDS)
    for kind, rule_id in expected.items():
        assert matched_rule(m, "/models/x.bin", "file", 5 * MiB, kind) == rule_id
        assert matched_rule(m, "/models/x.bin", "file", MiB - 1, kind) is None
        assert matched_rule(m, "/models/x.bin", "hardlink", 5 * MiB, kind) == rule_id
        assert matched_rule(m, "/models/x.bin", "symlink", 5 * MiB, kind) is None
    assert matched_rule(m, "/models/model.safetensors", "file", 5 * MiB, None) is None
    assert matched_rule(m, "/models", "dir") is None


def test_entry_kinds_constant() -> None:
    assert ENTRY_KINDS == ("file", "dir", "symlink", "hardlink", "other")
    assert Rule(id="a.b", profile="a", description="", strip=("/x",)).types == ENTRY_KINDS
