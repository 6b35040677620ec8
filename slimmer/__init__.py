"""slimmer: make container images smaller and faster to start, without a Docker daemon.

``slimmer.slim(source, dest, SlimOptions(...)) -> Report`` rewrites an image;
``slimmer.analyze(source, options) -> Report`` plans it and measures the savings, writing nothing;
``slimmer.coldstart([image, ...], ColdstartOptions(...)) -> ColdstartReport`` measures how fast
images pull, unpack and start.

Importing ``slimmer`` is light: the pipeline (and the compression libraries under it) loads
when ``slim`` or ``analyze`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimmer.coldstart import ColdstartOptions, ColdstartReport, PushChecks
from slimmer.errors import (
    AuthError,
    BlobError,
    InputError,
    LayerError,
    NotFoundError,
    OutputError,
    ProfileError,
    RegistryError,
    RuntimeUnavailableError,
    SlimmerError,
    StartError,
    TrustError,
    UsageError,
)
from slimmer.options import SlimOptions
from slimmer.report.model import ImageReport, LayerReport, Report
from slimmer.trust.options import TrustOptions

if TYPE_CHECKING:
    from slimmer.api import analyze, coldstart, slim
    from slimmer.build.cache import LayerCache

__all__ = ["slim", "analyze", "coldstart", "LayerCache", "SlimOptions", "TrustOptions",
           "ColdstartOptions", "PushChecks", "Report", "ImageReport", "LayerReport",
           "ColdstartReport", "SlimmerError", "UsageError", "ProfileError", "InputError",
           "BlobError", "LayerError", "OutputError", "TrustError", "RegistryError", "AuthError",
           "NotFoundError", "RuntimeUnavailableError", "StartError"]


def __getattr__(name: str) -> Any:
    if name in ("slim", "analyze", "coldstart"):
        from slimmer import api
        return getattr(api, name)
    if name == "LayerCache":
        from slimmer.build.cache import LayerCache
        return LayerCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
