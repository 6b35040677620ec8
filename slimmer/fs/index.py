"""The per-layer index: what the plan knows about every member of an input layer, in archive
order. Plain data made by one streaming scan (``fs.scan``); nothing here reads a layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slimmer.gpu.model import CudaFile
from slimmer.oci.layer import EntryKind
from slimmer.oci.media import Compression

if TYPE_CHECKING:   # fs.closure imports this module
    from slimmer.fs.closure.facts import Facts

#: What besides content and mode must be equal for two files to become one: uid, gid and the
#: extended attributes (PAX ``SCHILY.xattr.*`` records, sorted).
FileOwner = tuple[int, int, tuple[tuple[str, bytes], ...]]

#: ``Rec.matched`` before any match was made.
UNMATCHED = object()


class Rec:
    """What the plan knows about one tar member of an input layer."""

    __slots__ = ("path", "kind", "target", "size", "linkname", "mode", "content", "shebang",
                 "dir_header", "typeflag", "hsize", "cuda", "digest", "owner", "matched")

    def __init__(self, path: str, kind: EntryKind, target: str, size: int, linkname: str, mode: int,
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
        self.cuda: CudaFile | None = None     # its fat binaries (scanned for --cuda-arch)
        self.digest: bytes | None = None      # sha256 of the data (files hashed for dedupe)
        self.owner: FileOwner | None = None   # uid, gid and xattrs (files hashed for dedupe)
        #: The rule match the scan's speculative build found for the entry (``build.speculate``;
        #: a shared Match or None), or UNMATCHED; ``LayerIndex.matched_by`` says by which
        #: matcher (one per layer, not a tuple per entry: on a 60k-member image ~10 MiB).
        self.matched: object = UNMATCHED

    def __repr__(self) -> str:
        return f"Rec({self.path!r}, {self.kind}, {self.size})"


@dataclass
class LayerIndex:
    """All members of one input layer in archive order, plus its uncompressed size and the
    closure's facts of the files it inspects (by entry ordinal; empty unless collected)."""

    digest: str
    diff_id: str | None       # checked against the config during the scan; None: not checked
    tar_size: int
    compression: Compression
    entries: list[Rec] = field(default_factory=list)
    facts: dict[int, Facts] = field(default_factory=dict)
    #: The matcher whose matches the entries' ``Rec.matched`` hold (None: none were made).
    matched_by: object = None
