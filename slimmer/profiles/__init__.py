"""Strip profiles: built-in and user rules (TOML data files) compiled into one matcher; no I/O
beyond reading profile files. FORMAT.md describes the file format and the glob semantics."""

from __future__ import annotations

from .globs import Glob, compile_glob
from .loader import (builtin_profiles, load_profile_file, parse_size, select_profiles)
from .matcher import Matcher
from .model import CONTENT_KINDS, ENTRY_KINDS, Match, Profile, Rule
from .render import format_size, render_profile, render_profile_list
from .sniff import SNIFF_BYTES, sniff_content

__all__ = [
    "CONTENT_KINDS", "ENTRY_KINDS", "Glob", "Match", "Matcher", "Profile", "Rule", "SNIFF_BYTES",
    "builtin_profiles", "compile_glob", "format_size", "load_profile_file", "parse_size",
    "render_profile", "render_profile_list", "select_profiles", "sniff_content",
]
