"""The plan's data: what each output layer is made of and what happens to every input entry.

Plain data that can be printed, diffed and tested; the build executes it (``slimmer.build``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from slimmer.fs.overlay import Ref
from slimmer.oci.layer import EntryKind
from slimmer.oci.media import ZSTD, Compression
from slimmer.options import DEFAULT_MERGE_THRESHOLD, KEEP, SlimOptions, check_layer_options


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


class LayerReason(StrEnum):
    """Why an output layer has its mode (empty: nothing to say)."""

    NONE = ""
    FOREIGN = "foreign layer"
    MERGED = "merged"
    STRIPPED = "stripped"


class OverrideKind(StrEnum):
    """What overruled a strip rule that matched."""

    KEEP_RULE = "keep rule"
    PROTECTED = "protected"


PASSTHROUGH, RECOMPRESS, REBUILD = LayerMode.PASSTHROUGH, LayerMode.RECOMPRESS, LayerMode.REBUILD
COPY, DROP, RENAME, RELINK, FETCH = (OpAction.COPY, OpAction.DROP, OpAction.RENAME,
                                     OpAction.RELINK, OpAction.FETCH)


@dataclass(frozen=True)
class PlanOptions:
    """How to slim, as far as the plan is concerned: merge policy, base layers, compression."""

    merge: str = "auto"
    merge_threshold: int = DEFAULT_MERGE_THRESHOLD
    base: int = 0
    keep_base: bool = False
    compression: str = ZSTD.value      # zstd | gzip | none | keep
    level: int | None = None

    def __post_init__(self) -> None:
        check_layer_options(self.merge, self.compression, self.base, self.merge_threshold)

    @classmethod
    def of(cls, options: SlimOptions, compression: str | None = None) -> "PlanOptions":
        """The plan's part of the user's options; ``compression``: the variant planned (by
        default the first: gzip for gzip+zstd)."""
        return cls(options.merge, options.merge_threshold, options.base, options.keep_base,
                   compression or options.variants[0], options.level)

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


class Op:
    """What to do with one input entry of a rebuilt layer; ``prefix`` headers (directories
    hoisted from other positions) are written first."""

    __slots__ = ("action", "prefix", "path", "linkname", "src")

    def __init__(self, action: OpAction, prefix: tuple[bytes, ...] = (), path: str | None = None,
                 linkname: str | None = None, src: Ref | None = None) -> None:
        self.action = action
        self.prefix = prefix
        self.path = path
        self.linkname = linkname
        self.src = src

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
    the image needs the path (``kind`` PROTECTED)."""

    path: str
    rule: str
    kind: OverrideKind
    kept_by: str | None = None

    @property
    def reason(self) -> str:
        """The human reason, as the report shows it."""
        if self.kind == OverrideKind.KEEP_RULE:
            return f"kept by {self.kept_by}"
        return "needed by the entrypoint"


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

    @property
    def removed_bytes(self) -> int:
        return sum(r.size for r in self.removed)

    @property
    def whiteouts(self) -> list[str]:
        """The whiteouts this layer starts with, as text (``opaque DIR`` for markers)."""
        return [str(w) for w in self.preamble if isinstance(w, Whiteout)]

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

        put("slimmer.recipe/1", self.mode, ",".join(map(str, self.inputs)), len(self.preamble))
        for item in self.preamble:
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
                        op.src is None:
                    plain.append(b"%d%s;" % (ordinal, op.action.value.encode()))
                    continue
                if plain:
                    put(b"".join(plain))
                    plain = []
                src = "" if op.src is None else f"{op.src[0]}:{op.src[1]}"
                put(ordinal, op.action, len(op.prefix), *op.prefix,
                    "" if op.path is None else "p" + op.path,
                    "" if op.linkname is None else "l" + op.linkname, src)
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
            } for ly in self.layers],
            "overrides": [{"path": o.path, "rule": o.rule, "reason": o.reason}
                          for o in self.overrides],
            "protected": self.protected,
            "wasted": self.wasted,
        }
