"""Registry access: a small distribution-spec client, authentication, and the registry
``Source`` and ``Sink`` the core reads from and pushes to."""

from __future__ import annotations

from .options import Credentials, RegistryOptions
from .sink import RegistrySink
from .source import RegistrySource

__all__ = ["Credentials", "RegistryOptions", "RegistrySink", "RegistrySource"]
