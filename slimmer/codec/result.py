"""What building one output layer produced; plain data, so reports need no codec libraries."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimmer.oci.media import Compression


@dataclass(frozen=True)
class LayerResult:
    """What a finished output layer is: blob digest and size, diff_id, tar size, compression;
    ``from_cache``: taken from the layer cache, not built in this run."""

    digest: str
    size: int
    diff_id: str
    tar_size: int
    compression: Compression
    from_cache: bool = field(default=False, compare=False)
