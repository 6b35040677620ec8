"""Layer scanning: one streaming pass over a layer that builds its index (``fs.index``).

Only metadata is kept (and the header bytes of directories, which the merge may emit at another
position); file data is never kept, except a few sniffed leading bytes and, when asked for,
the facts the static closure needs (``fs.closure.collect``: ELF dynamic sections, imports of
sources, package and dist-info metadata), read from the same pass. An ``observer`` sees every
entry in the same pass, after it is indexed and before its data is skipped: that is how a build
runs alongside the scan (``build.speculate``). The closure's ELF reader and the fat-binary
scan watch the data however the observer consumes it (``TarReader.watch``): one pass for all.
With ``hash_min`` the pass also hashes (sha256) every regular file of at least that size the
same way, for ``--dedupe``: the data goes by anyway, and sha256 runs faster than the
decompression that produced it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Protocol

from slimmer.codec.cudascan import FatbinScanner
from slimmer.codec.layerstream import open_layer_tar
from slimmer.codec.tarread import Entry, TarReader
from slimmer.errors import LayerError
from slimmer.fs.closure.collect import collect
from slimmer.fs.closure.elf import ElfCapture
from slimmer.fs.closure.facts import Facts
from slimmer.fs.cuda import watch_cuda
from slimmer.fs.index import FileOwner, LayerIndex, Rec
from slimmer.oci.digest import short
from slimmer.oci.image import Layer
from slimmer.oci.layer import DIR, FILE

Sniffer = Callable[[bytes, int], "str | None"]
SHEBANG_MAX = 256
_XATTR_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.")


def owner_of(entry: Entry) -> FileOwner:
    """uid, gid and extended attributes of a tar entry (what a hardlink shares besides data)."""
    xattrs = tuple(sorted((k, v) for k, v in entry.pax or () if k.startswith(_XATTR_PREFIXES)))
    return entry.uid, entry.gid, xattrs


class ScanObserver(Protocol):
    """Sees a layer's entries during its scan; may consume their data from ``reader``."""

    def entry(self, ordinal: int, entry: Entry, rec: Rec, reader: TarReader) -> None: ...

    def end(self, reader: TarReader) -> None:
        """After the last entry; ``reader.tail`` holds what followed it."""
        ...


def scan_layer(layer: Layer, sniff: Sniffer | None = None, sniff_min: int = 0,
               sniff_bytes: int = 0, observer: ScanObserver | None = None,
               closure_facts: bool = False, cuda: bool = False,
               hash_min: int | None = None) -> LayerIndex:
    """Read a layer once and index it; verifies blob digest and diff_id on the way. With
    ``closure_facts`` the facts of the files the closure inspects are collected too; with
    ``cuda``, the fat binaries of ELF files (``Rec.cuda``); with ``hash_min``, regular files of
    at least that many bytes get a content digest and their owner (``Rec.digest``/``owner``)."""
    what = f"reading layer {short(layer.descriptor.digest)}"
    with open_layer_tar(layer, what, check_diff_id=False,
                        hash_in_caller=True) as (stream, tar_stream, compression):
        reader = TarReader(stream, what, hashing=True)
        entries: list[Rec] = []
        facts: dict[int, Facts] = {}
        watching: tuple[int, ElfCapture] | None = None
        fatbins: tuple[Rec, FatbinScanner] | None = None
        digesting: tuple[Rec, Any] | None = None
        for o, e in enumerate(reader):
            if digesting is not None:
                digesting[0].digest = digesting[1].digest()
                digesting = None
            if watching is not None:   # the previous entry's data has gone by
                facts[watching[0]] = watching[1].result()
                watching = None
            if fatbins is not None:
                fatbins[0].cuda = fatbins[1].finish()
                fatbins = None
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
                if closure_facts and e.typeflag != b"S":
                    found = collect(e.path, e.mode, e.size, rec.shebang, reader)
                    if isinstance(found, ElfCapture):
                        watching = (o, found)
                    elif found is not None:
                        facts[o] = found
                if cuda and e.typeflag != b"S":
                    scanner = watch_cuda(reader, e.size)
                    if scanner is not None:
                        fatbins = (rec, scanner)
                if hash_min is not None and e.size >= hash_min and e.typeflag != b"S":
                    h = hashlib.sha256()
                    reader.watch(h.update)
                    digesting = (rec, h)
                    rec.owner = owner_of(e)
            entries.append(rec)
            if observer is not None:
                observer.entry(o, e, rec, reader)
        if watching is not None:
            facts[watching[0]] = watching[1].result()
        if fatbins is not None:
            fatbins[0].cuda = fatbins[1].finish()
        if digesting is not None:
            digesting[0].digest = digesting[1].digest()
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
                          entries, facts)
