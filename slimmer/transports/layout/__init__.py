"""OCI image layouts on disk (``oci:DIR[:TAG|@DIGEST]``): a digest-verifying source and an
all-or-nothing sink."""

from __future__ import annotations

from slimmer.transports.layout.sink import LayoutSink
from slimmer.transports.layout.source import LayoutSource

__all__ = ["LayoutSink", "LayoutSource"]
