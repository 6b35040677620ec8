"""Strip profiles: built-in and user rules (TOML data files) compiled into one matcher; no I/O
beyond reading profile files. FORMAT.md describes the file format and the glob semantics."""

from __future__ import annotations

from slimmer.globs import Glob, compile_glob
from slimmer.profiles.detect import ML_MARKERS, detect_ml
from slimmer.profiles.loader import builtin_profiles, load_profile_file, select_profiles
from slimmer.profiles.matcher import Matcher, present_globs
from slimmer.profiles.model import CATEGORIES, CONTENT_KINDS, ENTRY_KINDS, Match, Profile, Rule
from slimmer.profiles.render import render_profile, render_profile_list
from slimmer.profiles.sniff import SNIFF_BYTES, sniff_content

__all__ = [
    "CATEGORIES", "CONTENT_KINDS", "ENTRY_KINDS", "Glob", "ML_MARKERS", "Match", "Matcher",
    "Profile", "Rule", "SNIFF_BYTES", "builtin_profiles", "compile_glob", "detect_ml",
    "load_profile_file", "present_globs",
    "render_profile", "render_profile_list", "select_profiles", "sniff_content",
]
