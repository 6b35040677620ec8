"""The installed slimmer version, for User-Agent strings and reports."""

from __future__ import annotations

import functools


@functools.cache
def slimmer_version() -> str:
    """The installed slimmer version ("0" when running from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("slimmer")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "0"
