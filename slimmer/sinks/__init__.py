"""Image sinks: writers that store blobs and manifests and point a reference at them last."""

from __future__ import annotations

from .layout import LayoutSink

__all__ = ["LayoutSink"]
