"""slimmer: make container images smaller and faster to start, without a Docker daemon.

``slimmer.slim(source, dest, SlimOptions(...)) -> Report`` rewrites an image;
``slimmer.analyze(source, options) -> Report`` plans it and measures the savings, writing nothing.

Importing ``slimmer`` is light: the pipeline (and the compression libraries under it) loads
when ``slim`` or ``analyze`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimmer.errors import (
    AuthError,
    BlobError,
    InputError,
    LayerError,
    NotFoundError,
    OutputError,
    ProfileError,
    RegistryError,
    SlimmerError,
    TrustError,
    UsageError,
)
from slimmer.options import SlimOptions
from slimmer.report.model import ImageReport, LayerReport, Report
from slimmer.trust.options import TrustOptions

if TYPE_CHECKING:
    from slimmer.api import analyze, slim
    from slimmer.build.cache import LayerCache

__all__ = ["slim", "analyze", "LayerCache", "SlimOptions", "TrustOptions", "Report", "ImageReport",
           "LayerReport", "SlimmerError", "UsageError", "ProfileError", "InputError",
           "BlobError", "LayerError", "OutputError", "TrustError", "RegistryError", "AuthError",
           "NotFoundError"]


def __getattr__(name: str) -> Any:
    if name in ("slim", "analyze"):
        from slimmer import api
        return getattr(api, name)
    if name == "LayerCache":
        from slimmer.build.cache import LayerCache
        return LayerCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
