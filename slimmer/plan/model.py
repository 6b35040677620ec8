"""The plan's data: what each output layer is made of and what happens to every input entry.

Plain data that can be printed, diffed and tested; the build executes it (``slimmer.build``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from slimmer.fs.closure import Closure
from slimmer.fs.overlay import Overlay, Ref
from slimmer.oci.layer import EntryKind
from slimmer.oci.media import ZSTD, Compression
from slimmer.options import (
    DEFAULT_DEDUPE_MIN_SIZE,
    DEFAULT_MERGE_THRESHOLD,
    KEEP,
    SlimOptions,
    check_layer_options,
)


class LayerMode(StrEnum):
    """How an output layer is produced from its input layer(s)."""

    PASSTHROUGH = "passthrough"   # the input blob, byte-identical
    RECOMPRESS = "recompress"     # the same tar bytes (same diff_id), another compression
    REBUILD = "rebuild"           # tar filtered and/or merged


class OpAction(StrEnum):
    """What a rebuild does with one input entry."""

    COPY = "copy"          # original header blocks and data, unchanged
    DROP = "drop"          # nothing (its ``prefix`` headers are still written)
    RENAME = "rename"      # data under another path (a hardlink's data moved to the link)
    RELINK = "relink"      # hardlink pointed at another surviving name
    FETCH = "fetch"        # data of an entry in another input layer, under this path
    REWRITE = "rewrite"    # original header, data with content rewritten (same size)
    LINK = "link"          # a file written as a hardlink to an identical earlier one (dedupe)


class LayerReason(StrEnum):
    """Why an output layer has its mode (empty: nothing to say)."""

    NONE = ""
    FOREIGN = "foreign layer"
    MERGED = "merged"
    STRIPPED = "stripped"
    DEDUPED = "deduplicated"


class OverrideKind(StrEnum):
    """What overruled a strip rule that matched."""

    KEEP_RULE = "keep rule"
    PROTECTED = "protected"


PASSTHROUGH, RECOMPRESS, REBUILD = LayerMode.PASSTHROUGH, LayerMode.RECOMPRESS, LayerMode.REBUILD
COPY, DROP, RENAME, RELINK, FETCH, REWRITE, LINK = (
    OpAction.COPY, OpAction.DROP, OpAction.RENAME, OpAction.RELINK, OpAction.FETCH,
    OpAction.REWRITE, OpAction.LINK)


@dataclass(frozen=True)
class PlanOptions:
    """How to slim, as far as the plan is concerned: merge policy, base layers, compression."""

    merge: str = "auto"
    merge_threshold: int = DEFAULT_MERGE_THRESHOLD
    base: int = 0
    keep_base: bool = False
    compression: str = ZSTD.value      # zstd | gzip | none | keep
    level: int | None = None
    keep: tuple[str, ...] = ()         # --keep globs: starting points of the closure too
    no_protect: tuple[str, ...] = ()   # --no-protect globs: the closure yields to the rules
    cuda_arch: tuple[str, ...] = ()    # GPUs to keep GPU code for; empty: keep all
    no_ptx: bool = False
    dedupe: bool = False
    dedupe_min_size: int = DEFAULT_DEDUPE_MIN_SIZE

    def __post_init__(self) -> None:
        check_layer_options(self.merge, self.compression, self.base, self.merge_threshold)

    @classmethod
    def of(cls, options: SlimOptions, compression: str | None = None) -> "PlanOptions":
        """The plan's part of the user's options; ``compression``: the variant planned (by
        default the first: gzip for gzip+zstd)."""
        return cls(options.merge, options.merge_threshold, options.base, options.keep_base,
                   compression or options.variants[0], options.level, options.keep,
                   options.no_protect, options.cuda_arch, options.no_ptx, options.dedupe,
                   options.dedupe_min_size)

    @property
    def keeps_compression(self) -> bool:
        return self.compression == KEEP

    def output_compression(self, source: Compression) -> Compression:
        """What a layer compressed with ``source`` is written with."""
        return source if self.compression == KEEP else Compression(self.compression)


@dataclass(frozen=True)
class Whiteout:
    """A header-only entry a rebuilt layer starts with: a whiteout hiding ``path`` in lower
    layers, or (``opaque``) the opaque marker of directory ``path``."""

    path: str
    opaque: bool = False

    def __str__(self) -> str:
        return ("opaque " if self.opaque else "") + self.path


#: An entry of a rebuilt layer's preamble: a directory header copied from the scan, or a
#: whiteout the build writes.
PreambleEntry = bytes | Whiteout


@dataclass(frozen=True)
class ContainerEdit:
    """One fat binary container made smaller in place: at file ``offset``, ``size`` bytes
    long, it keeps the entries at the (offset, size) ranges of ``keep``, moved to its front;
    the bytes they no longer use become zeros."""

    offset: int
    size: int
    keep: tuple[tuple[int, int], ...]

    @property
    def kept_size(self) -> int:
        """Bytes of the container after the edit, header included."""
        return 16 + sum(size for _, size in self.keep)


@dataclass(frozen=True)
class Rewrite:
    """New content for a file of ``size`` bytes: the same bytes but for ``edits``."""

    size: int
    edits: tuple[ContainerEdit, ...]

    @property
    def blanked(self) -> int:
        """Bytes the edits turn into zeros."""
        return sum(e.size - e.kept_size for e in self.edits)


class Op:
    """What to do with one input entry of a rebuilt layer; ``prefix`` headers (directories
    hoisted from other positions) are written first. ``rewrite``: the data is written with
    this content change (REWRITE, or a RENAME/FETCH of such data)."""

    __slots__ = ("action", "prefix", "path", "linkname", "src", "rewrite")

    def __init__(self, action: OpAction, prefix: tuple[bytes, ...] = (), path: str | None = None,
                 linkname: str | None = None, src: Ref | None = None,
                 rewrite: Rewrite | None = None) -> None:
        self.action = action
        self.prefix = prefix
        self.path = path
        self.linkname = linkname
        self.src = src
        self.rewrite = rewrite

    def __repr__(self) -> str:
        extra = self.path or self.linkname or ""
        return f"Op({self.action}{' ' + extra if extra else ''}, prefix={len(self.prefix)})"


#: The shared op of entries copied as they are (most of them).
COPY_OP = Op(COPY)
DROP_OP = Op(DROP)


@dataclass(frozen=True)
class Removal:
    """A file removed from the image: by which rule, from which input layer."""

    path: str
    size: int
    rule: str
    layer: int
    kind: EntryKind
    shadowed: bool = False      # not visible in the input image (overwritten/deleted later)


@dataclass(frozen=True)
class Override:
    """A strip rule that matched but was overruled: by a keep rule (``kept_by``) or because
    the image needs the path (``kind`` PROTECTED, ``chain`` says why: the path, each parent
    with its kind of link, the starting point)."""

    path: str
    rule: str
    kind: OverrideKind
    kept_by: str | None = None
    chain: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """The human reason, as the report shows it."""
        if self.kind == OverrideKind.KEEP_RULE:
            return f"kept by {self.kept_by}"
        return "needed: " + " <- ".join(self.chain) if self.chain else "needed by the image"


@dataclass(frozen=True)
class Forced:
    """A path the image needs that a rule removes anyway because ``--no-protect PATTERN``
    matches it (the report warns about each)."""

    path: str
    rule: str
    pattern: str
    chain: tuple[str, ...] = ()


class CudaStatus(StrEnum):
    """What ``--cuda-arch`` did to one file with fat binaries."""

    PRUNED = "pruned"              # GPU code for other GPUs dropped
    ALL_NEEDED = "all needed"      # every entry is the best code for a listed GPU
    NO_CODE = "no code"            # a listed GPU would find neither cubin nor PTX: unchanged
    MALFORMED = "malformed"        # fat binaries that do not parse: unchanged
    KEPT_LAYER = "kept layer"      # in a layer passed through (--keep-base, foreign)


@dataclass(frozen=True)
class CudaLibrary:
    """One file with fat binaries: its GPU code bytes before and after, the code kept and
    dropped (``sm_90``, ``compute_120``), and why it is as it is."""

    path: str
    layer: int
    size: int
    code_before: int
    code_after: int
    kept: tuple[str, ...]
    dropped: tuple[str, ...]
    status: CudaStatus
    detail: str = ""
    shadowed: bool = False
    in_distribution: bool = False  # under a site-packages dir with *.dist-info (RECORD)

    @property
    def flagged(self) -> bool:
        """Left unchanged although it could not be judged safe for the listed GPUs."""
        return self.status in (CudaStatus.NO_CODE, CudaStatus.MALFORMED)


@dataclass(frozen=True)
class DedupeGroup:
    """Identical files of one output layer: ``paths[0]`` is written with its data, the others
    as hardlinks to it."""

    size: int
    paths: tuple[str, ...]

    @property
    def saved(self) -> int:
        """Data bytes the layer no longer carries."""
        return self.size * (len(self.paths) - 1)


@dataclass(frozen=True)
class CrossLayerCopies:
    """Identical files visible in the final image that stay separate copies because they live
    in different output layers (``layers``: output layer indexes, one per path)."""

    size: int
    paths: tuple[str, ...]
    layers: tuple[int, ...]

    @property
    def extra(self) -> int:
        """Bytes beyond one copy per file content."""
        return self.size * (len(set(self.layers)) - 1)


@dataclass
class OutputLayer:
    """One output layer of the plan."""

    inputs: tuple[int, ...]
    mode: LayerMode
    compression: Compression
    input_size: int
    input_tar_size: int | None
    removed: list[Removal] = field(default_factory=list)
    preamble: list[PreambleEntry] = field(default_factory=list)
    ops: dict[int, dict[int, Op]] = field(default_factory=dict)
    reason: LayerReason = LayerReason.NONE
    #: A rebuilt single layer is written in stream order (``streaming``): its own whiteouts
    #: stay where they are, directories a rule selects come just before the first entry
    #: below them that stays, and the header-only entries that need the whole stack known
    #: (whiteouts hiding stripped paths below, selected directories that stay with nothing
    #: below them here) form a ``trailer`` after the last entry, compressed as a frame of its
    #: own, so the body can be built in the same pass as the scan (``build.speculate``).
    trailer: list[PreambleEntry] = field(default_factory=list)
    streaming: bool = False
    deduped: list[DedupeGroup] = field(default_factory=list)

    @property
    def removed_bytes(self) -> int:
        return sum(r.size for r in self.removed)

    @property
    def deduped_bytes(self) -> int:
        return sum(g.saved for g in self.deduped)

    @property
    def whiteouts(self) -> list[str]:
        """The whiteouts this layer adds, as text (``opaque DIR`` for markers)."""
        return [str(w) for w in (*self.preamble, *self.trailer) if isinstance(w, Whiteout)]

    @property
    def sources(self) -> tuple[int, ...]:
        """Every input layer whose bytes this layer reads: its inputs, and the layers
        hardlink data is fetched from (sorted)."""
        fetched = {op.src[0] for ops in self.ops.values() for op in ops.values()
                   if op.src is not None}
        return tuple(sorted(set(self.inputs) | fetched))

    def recipe_digest(self) -> str:
        """A stable digest of how this layer's tar is made from its input tars: the mode,
        the input positions, the preamble and every op (actions, hoisted headers, new paths
        and link targets, fetch sources). Equal digests over equal input tars (see
        ``sources``) give equal tar bytes; the layer cache keys on it."""
        h = hashlib.sha256()

        def put(*fields: object) -> None:
            for value in fields:
                raw = value if isinstance(value, bytes) else \
                    str(value).encode("utf-8", "surrogateescape")
                h.update(len(raw).to_bytes(8, "big"))
                h.update(raw)

        put("slimmer.recipe/1", self.mode, ",".join(map(str, self.inputs)), len(self.preamble),
            int(self.streaming), len(self.trailer))
        for item in (*self.preamble, *self.trailer):
            if isinstance(item, Whiteout):
                put("whiteout", item.path, int(item.opaque))
            else:
                put("header", item)
        for j in self.inputs:
            ops = self.ops.get(j, {})
            put("layer", j, len(ops))
            plain: list[bytes] = []          # most entries: copied as they are, one token each
            for ordinal in sorted(ops):
                op = ops[ordinal]
                if not op.prefix and op.path is None and op.linkname is None and \
                        op.src is None and op.rewrite is None:
                    plain.append(b"%d%s;" % (ordinal, op.action.value.encode()))
                    continue
                if plain:
                    put(b"".join(plain))
                    plain = []
                src = "" if op.src is None else f"{op.src[0]}:{op.src[1]}"
                put(ordinal, op.action, len(op.prefix), *op.prefix,
                    "" if op.path is None else "p" + op.path,
                    "" if op.linkname is None else "l" + op.linkname, src,
                    "" if op.rewrite is None else repr(op.rewrite))
            if plain:
                put(b"".join(plain))
        return "sha256:" + h.hexdigest()


@dataclass
class ImagePlan:
    """The plan for one platform image."""

    layers: list[OutputLayer]
    overrides: list[Override]
    protected: list[str]
    wasted: list[int | None]           # per input layer: bytes overwritten/deleted later
    scanned: bool
    #: The input's final tree (path -> visible entry) the strip decisions were made on; None
    #: when nothing was scanned. The report's file tree is drawn from it (not printed).
    final: Overlay | None = field(default=None, repr=False, compare=False)
    forced: list[Forced] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # the closure's, one line each
    closure: Closure | None = None
    why: dict[str, dict[str, Any]] = field(default_factory=dict)   # explained paths
    cuda: list["CudaLibrary"] = field(default_factory=list)   # with --cuda-arch
    cross_layer: list[CrossLayerCopies] | None = None   # with dedupe: copies left apart

    @property
    def removed(self) -> list[Removal]:
        return [r for layer in self.layers for r in layer.removed]

    def to_dict(self) -> dict[str, Any]:
        """Printable form (no header bytes)."""
        return {
            "layers": [{
                "inputs": list(ly.inputs), "mode": ly.mode, "compression": ly.compression,
                "input_size": ly.input_size, "input_tar_size": ly.input_tar_size,
                "removed_files": len(ly.removed), "removed_bytes": ly.removed_bytes,
                "whiteouts": ly.whiteouts, "reason": ly.reason,
                "deduped_files": sum(len(g.paths) - 1 for g in ly.deduped),
                "deduped_bytes": ly.deduped_bytes,
            } for ly in self.layers],
            "overrides": [{"path": o.path, "rule": o.rule, "reason": o.reason,
                           "chain": list(o.chain)} for o in self.overrides],
            "forced": [{"path": f.path, "rule": f.rule, "pattern": f.pattern,
                        "chain": list(f.chain)} for f in self.forced],
            "protected": self.protected,
            "wasted": self.wasted,
            "warnings": self.warnings,
        }
