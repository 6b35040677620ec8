"""Image sources: readers that resolve a reference into an Image / Index with re-openable layers."""

from __future__ import annotations

from .layout import LayoutSource

__all__ = ["LayoutSource"]
