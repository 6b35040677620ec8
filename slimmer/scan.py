"""Layer scanning: one streaming pass over a layer that records what the plan needs.

The index holds per-entry metadata only (and the header bytes of directories, which the merge
may emit at another position); file data is never kept, except a few sniffed leading bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .layerstream import open_layer_tar
from .digest import short
from .image import Layer
from .tarstream import DIR, FILE, TarReader

Sniffer = Callable[[bytes, int], "str | None"]
SHEBANG_MAX = 256


class Rec:
    """What the plan knows about one tar member of an input layer."""

    __slots__ = ("path", "kind", "target", "size", "linkname", "mode", "content", "shebang",
                 "dir_header", "typeflag", "hsize")

    def __init__(self, path: str, kind: str, target: str, size: int, linkname: str, mode: int,
                 typeflag: bytes, hsize: int) -> None:
        self.path = path
        self.kind = kind
        self.target = target          # whiteout / opaque: the path it hides
        self.size = size
        self.linkname = linkname
        self.mode = mode
        self.typeflag = typeflag
        self.hsize = hsize            # bytes of header blocks (for exact output size estimates)
        self.content: str | None = None
        self.shebang: str | None = None
        self.dir_header: bytes | None = None

    def __repr__(self) -> str:
        return f"Rec({self.path!r}, {self.kind}, {self.size})"


@dataclass
class LayerIndex:
    """All members of one input layer in archive order, plus its uncompressed size."""

    digest: str
    diff_id: str
    tar_size: int
    compression: str
    entries: list[Rec] = field(default_factory=list)


def scan_layer(layer: Layer, sniff: Sniffer | None = None, sniff_min: int = 0,
               sniff_bytes: int = 0) -> LayerIndex:
    """Read a layer once and index it; verifies blob digest and diff_id on the way."""
    what = f"reading layer {short(layer.descriptor.digest)}"
    with open_layer_tar(layer, what, hash_in_caller=True) as (stream, tar_stream, compression):
        reader = TarReader(stream, what)
        entries: list[Rec] = []
        for e in reader:
            rec = Rec(e.path, e.kind, e.target, e.size, e.linkname, e.mode, e.typeflag,
                      len(e.header))
            if e.kind == DIR:
                rec.dir_header = e.header
            elif e.kind == FILE and e.size:
                if sniff is not None and e.size >= sniff_min and e.typeflag != b"S":
                    rec.content = sniff(reader.head(sniff_bytes), e.size)
                if e.mode & 0o111:
                    head = reader.head(SHEBANG_MAX)
                    if head.startswith(b"#!"):
                        rec.shebang = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace")
            entries.append(rec)
        while stream.read(1 << 20):
            pass
        return LayerIndex(layer.descriptor.digest, tar_stream.diff_id or "", tar_stream.size,
                          compression, entries)
