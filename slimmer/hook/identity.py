"""How the hook recognises its own pushes: the User-Agent of every registry request it makes."""

from __future__ import annotations

from slimmer.version import slimmer_version

USER_AGENT_PREFIX = "slimmer-hook/"


def user_agent() -> str:
    """The User-Agent of the hook's registry requests; the front ignores pushes that carry it."""
    return f"{USER_AGENT_PREFIX}{slimmer_version()}"
