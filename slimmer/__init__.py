"""slimmer: make container images smaller and faster to start, without a Docker daemon.

``slimmer.slim(source, dest, SlimOptions(...)) -> Report`` rewrites an image;
``slimmer.analyze(source, options) -> Report`` plans it and measures the savings, writing nothing.
"""

from .api import SlimOptions, analyze, slim
from .errors import (BlobError, InputError, LayerError, OutputError, ProfileError, SlimmerError,
                     TrustError, UsageError)
from .report import ImageReport, LayerReport, Report
from .trust.options import TrustOptions

__all__ = ["slim", "analyze", "SlimOptions", "TrustOptions", "Report", "ImageReport", "LayerReport",
           "SlimmerError", "UsageError", "ProfileError", "InputError", "BlobError",
           "LayerError", "OutputError", "TrustError"]
