"""Registry access: a small distribution-spec client, authentication, and the registry
``Source`` and ``Sink`` the core reads from and pushes to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimmer.transports.registry.options import Credentials, RegistryOptions

if TYPE_CHECKING:
    from slimmer.transports.registry.sink import RegistrySink
    from slimmer.transports.registry.source import RegistrySource

__all__ = ["Credentials", "RegistryOptions", "RegistrySink", "RegistrySource"]


def __getattr__(name: str) -> Any:
    """The source and sink (and httpx under them) load on first use: a run that touches no
    registry does not pay for them at start-up."""
    if name == "RegistrySink":
        from slimmer.transports.registry.sink import RegistrySink
        return RegistrySink
    if name == "RegistrySource":
        from slimmer.transports.registry.source import RegistrySource
        return RegistrySource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
