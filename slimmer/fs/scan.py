"""Layer scanning: one streaming pass over a layer that builds its index (``fs.index``).

Only metadata is kept (and the header bytes of directories, which the merge may emit at another
position); file data is never kept, except a few sniffed leading bytes.
"""

from __future__ import annotations

from typing import Callable

from slimmer.codec.layerstream import open_layer_tar
from slimmer.codec.tarread import TarReader
from slimmer.fs.cuda import index_cuda
from slimmer.fs.index import LayerIndex, Rec
from slimmer.oci.digest import short
from slimmer.oci.image import Layer
from slimmer.oci.layer import DIR, FILE

Sniffer = Callable[[bytes, int], "str | None"]
SHEBANG_MAX = 256


def scan_layer(layer: Layer, sniff: Sniffer | None = None, sniff_min: int = 0,
               sniff_bytes: int = 0, cuda: bool = False) -> LayerIndex:
    """Read a layer once and index it; verifies blob digest and diff_id on the way.
    ``cuda``: also find the fat binaries of ELF files (``Rec.cuda``)."""
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
                if cuda and e.typeflag != b"S":
                    rec.cuda = index_cuda(reader, e.size)
            entries.append(rec)
        while stream.read(1 << 20):
            pass
        return LayerIndex(layer.descriptor.digest, tar_stream.diff_id or "", tar_stream.size,
                          compression, entries)
