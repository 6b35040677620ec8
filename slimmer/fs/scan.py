"""Layer scanning: one streaming pass over a layer that builds its index (``fs.index``).

Only metadata is kept (and the header bytes of directories, which the merge may emit at another
position); file data is never kept, except a few sniffed leading bytes. An ``observer`` sees
every entry in the same pass, after it is indexed and before its data is skipped: that is how
a build runs alongside the scan (``build.speculate``).
"""

from __future__ import annotations

from typing import Callable, Protocol

from slimmer.codec.layerstream import open_layer_tar
from slimmer.codec.tarread import Entry, TarReader
from slimmer.errors import LayerError
from slimmer.fs.index import LayerIndex, Rec
from slimmer.oci.digest import short
from slimmer.oci.image import Layer
from slimmer.oci.layer import DIR, FILE

Sniffer = Callable[[bytes, int], "str | None"]
SHEBANG_MAX = 256


class ScanObserver(Protocol):
    """Sees a layer's entries during its scan; may consume their data from ``reader``."""

    def entry(self, ordinal: int, entry: Entry, rec: Rec, reader: TarReader) -> None: ...

    def end(self, reader: TarReader) -> None:
        """After the last entry; ``reader.tail`` holds what followed it."""
        ...


def scan_layer(layer: Layer, sniff: Sniffer | None = None, sniff_min: int = 0,
               sniff_bytes: int = 0, observer: ScanObserver | None = None) -> LayerIndex:
    """Read a layer once and index it; verifies blob digest and diff_id on the way."""
    what = f"reading layer {short(layer.descriptor.digest)}"
    with open_layer_tar(layer, what, check_diff_id=False,
                        hash_in_caller=True) as (stream, tar_stream, compression):
        reader = TarReader(stream, what, hashing=True)
        entries: list[Rec] = []
        for o, e in enumerate(reader):
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
            if observer is not None:
                observer.entry(o, e, rec, reader)
        # An observer that rewrites the layer may stop the input hash (it hashes its output
        # instead): the index then says the diff_id was not checked, and a pass that copies
        # the input checks it.
        diff_id = reader.diff_id() if reader.hashing else None
        if diff_id is not None and diff_id != layer.diff_id:
            raise LayerError(f"{what}: uncompressed content does not match the config's "
                             f"diff_id {layer.diff_id[:19]} (it is {diff_id[:19]})")
        if observer is not None:
            observer.end(reader)
        return LayerIndex(layer.descriptor.digest, diff_id, tar_stream.size, compression,
                          entries)
