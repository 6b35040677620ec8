"""Human-readable listings of profiles for ``slim profiles`` and ``slim profiles NAME``."""

from __future__ import annotations

from typing import Mapping

from slimmer.profiles.model import ENTRY_KINDS, Profile, Rule
from slimmer.units import format_size


def render_profile_list(profiles: Mapping[str, Profile]) -> str:
    """One line per profile: name, "default" or "opt-in", description and any warning."""
    if not profiles:
        return ""
    width = max(len(name) for name in profiles)
    lines = []
    for name, profile in profiles.items():
        marker = "default" if profile.default else "opt-in"
        line = f"{name:<{width}}  {marker:<7}  {profile.description}"
        if profile.warning:
            line += f" (warning: {profile.warning})"
        lines.append(line)
    return "\n".join(lines)


def _conditions(rule: Rule) -> list[str]:
    out = []
    if rule.content:
        out.append("content: " + ", ".join(rule.content))
    if rule.min_size:
        out.append("min size: " + format_size(rule.min_size, exact=True))
    if rule.types != ENTRY_KINDS:
        out.append("types: " + ", ".join(rule.types))
    if rule.if_image_has:
        out.append("only if the image has: " + "  ".join(rule.if_image_has))
    if rule.unless_image_has:
        out.append("not if the image has: " + "  ".join(rule.unless_image_has))
    return out


def render_profile(profile: Profile) -> str:
    """Every rule of a profile: id, description, strip and keep globs and its conditions."""
    head = f"{profile.name} ({'default' if profile.default else 'opt-in'}): {profile.description}"
    lines = [head]
    if profile.source != "builtin":
        lines.append(f"source: {profile.source}")
    if profile.category:
        lines.append(f"category: {profile.category} (slim analyze lists it for such images)")
    if profile.warning:
        lines.append(f"warning: {profile.warning}")
    for rule in profile.rules:
        lines.append("")
        lines.append(f"{rule.id}" + (f": {rule.description}" if rule.description else ""))
        if rule.strip:
            lines.append("  strip: " + "  ".join(rule.strip))
        if rule.keep:
            lines.append("  keep:  " + "  ".join(rule.keep))
        for condition in _conditions(rule):
            lines.append("  " + condition)
    return "\n".join(lines)
