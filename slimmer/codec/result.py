"""What building one output layer produced; plain data, so reports need no codec libraries."""

from __future__ import annotations

from dataclasses import dataclass

from slimmer.oci.media import Compression


@dataclass(frozen=True)
class LayerResult:
    """What a finished output layer is: blob digest and size, diff_id, tar size, compression."""

    digest: str
    size: int
    diff_id: str
    tar_size: int
    compression: Compression
