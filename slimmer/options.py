"""What a user asks of a run: ``SlimOptions`` (the same for the library, the CLI and the hook's
rules), their checks, and the digest of everything that decides the output bytes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Sequence

from slimmer.errors import UsageError
from slimmer.globs import compile_glob
from slimmer.gpu.arch import parse_gpus
from slimmer.oci.digest import sha256_digest
from slimmer.oci.media import GZIP, NONE, ZSTD, Compression
from slimmer.oci.model import dump_json


class MergeMode(StrEnum):
    """How adjacent layers are merged: runs of small ones, none, or every non-base layer."""

    AUTO = "auto"
    NONE = "none"
    ALL = "all"


MERGE_MODES = tuple(m.value for m in MergeMode)
#: ``--compression keep``: each layer keeps its own compression.
KEEP = "keep"
#: ``--compression gzip+zstd``: per platform a gzip and a zstd image in one index.
GZIP_ZSTD = "gzip+zstd"
COMPRESSION_CHOICES = (ZSTD.value, GZIP.value, NONE.value, KEEP, GZIP_ZSTD)
DEFAULT_MERGE_THRESHOLD = 16 << 20
#: ``--dedupe``: files smaller than this are never deduplicated (nor hashed).
DEFAULT_DEDUPE_MIN_SIZE = 1 << 20
#: Output compression levels: the default and the accepted range of each compressor.
DEFAULT_LEVEL = {ZSTD: 2, GZIP: 2, NONE: 0}
LEVEL_RANGE = {ZSTD: (1, 22), GZIP: (0, 3), NONE: (0, 0)}
#: zstd levels from here on ("ultra") need far more memory per compressor (recompressing the
#: node bench image peaked at 2.06 GiB at 22 against 0.65 GiB at 19, see README): such layers
#: are compressed one at a time, with at most ULTRA_THREADS zstd workers.
ULTRA_LEVEL = 20
ULTRA_THREADS = 2

#: Bump when the bytes slimmer writes for the same input and options change (a new default
#: compression parameter, a different tar layout), so old results are not taken as current.
#: 2: rebuilt single layers are written in stream order with a trailer frame (so the build can
#: run in the scan's pass), and compressors are fed in fixed 1 MiB pieces (gzip output no
#: longer depends on how the input arrived).
#: 3: the static closure (fs.closure) keeps what the image needs although rules match it.
#: 4: whiteouts and opaque markers inside a directory the layer whites out as a whole are
#: dropped (containerd failed to unpack such layers: "failed to convert whiteout file").
#: 5: a rebuilt single layer also drops its own markers in a directory it strips when they
#: hide nothing lower (containerd made the directory for them).
OUTPUT_FORMAT = 5


def check_layer_options(merge: str, compression: str, base: int, merge_threshold: int) -> None:
    """UsageError unless the merge mode, output compression and sizes are valid."""
    if merge not in MERGE_MODES:
        raise UsageError(f"--merge must be one of {', '.join(MERGE_MODES)}")
    if compression not in COMPRESSION_CHOICES:
        raise UsageError("--compression must be zstd, gzip, none, keep or gzip+zstd")
    if base < 0 or merge_threshold < 0:
        raise UsageError("--base and --merge-threshold must not be negative")


@dataclass(frozen=True)
class SlimOptions:
    """Everything that decides the output; the same options give the same digests."""

    profiles: tuple[str, ...] = ()            # names or comma lists; empty: caches,docs
    profile_files: tuple[str, ...] = ()
    strip: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    no_protect: tuple[str, ...] = ()          # globs the closure does not protect
    platforms: tuple[str, ...] = ()           # os/arch[/variant]; empty: all
    merge: str = MergeMode.AUTO.value
    merge_threshold: int = DEFAULT_MERGE_THRESHOLD
    base: int = 0
    keep_base: bool = False
    compression: str = ZSTD.value
    level: int | None = None
    jobs: int | None = None                   # parallel layers; None: all cores
    cuda_arch: tuple[str, ...] = ()           # GPUs (sm_90, h100, comma lists); empty: all
    no_ptx: bool = False                      # with cuda_arch: drop PTX too
    dedupe: bool = False                      # identical files in one output layer -> links
    dedupe_min_size: int = DEFAULT_DEDUPE_MIN_SIZE

    def check(self) -> "SlimOptions":
        """These options, or UsageError naming the first invalid one."""
        check_layer_options(self.merge, self.compression, self.base, self.merge_threshold)
        if self.level is not None and self.compression != KEEP:
            leveled = ZSTD if self.compression == GZIP_ZSTD else Compression(self.compression)
            lo, hi = LEVEL_RANGE[leveled]
            if not lo <= self.level <= hi:
                raise UsageError(f"--level for {leveled} must be {lo}..{hi}")
        if self.jobs is not None and self.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        for pattern in self.no_protect:
            try:
                compile_glob(pattern)
            except ValueError as exc:
                raise UsageError(f"bad glob {pattern!r} (--no-protect): {exc}") from None
        parse_gpus(self.cuda_arch)
        if self.no_ptx and not self.cuda_arch:
            raise UsageError("--no-ptx needs --cuda-arch")
        if self.dedupe_min_size < 1:
            raise UsageError("--dedupe-min must be at least 1 byte")
        return self

    @property
    def variants(self) -> tuple[str, ...]:
        """The compressions written per platform: one, or gzip then zstd for gzip+zstd."""
        if self.compression == GZIP_ZSTD:
            return (GZIP.value, ZSTD.value)
        return (self.compression,)

    def level_for(self, compression: Compression) -> int:
        """The level a layer written with ``compression`` gets: ``level`` where it applies
        (with gzip+zstd, to the zstd layers only; with keep, to zstd layers), else the
        compression's default."""
        applies = self.compression in (compression.value, KEEP) or (
            self.compression == GZIP_ZSTD and compression == ZSTD)
        if self.level is None or not applies:
            return DEFAULT_LEVEL[compression]
        lo, hi = LEVEL_RANGE[compression]
        return self.level if lo <= self.level <= hi else DEFAULT_LEVEL[compression]


#: How each SlimOptions field enters ``options_digest``. Every field must be in exactly one
#: of these (a test enforces it), so a new option cannot silently be left out of the digest.
DIGESTED_FIELDS = ("strip", "keep", "no_protect", "platforms", "merge", "merge_threshold",
                   "base", "keep_base", "compression", "level", "cuda_arch", "no_ptx", "dedupe",
                   "dedupe_min_size")
#: Enter the digest as the content of the rules they select, not as names or paths.
RULE_FIELDS = ("profiles", "profile_files")
#: Do not change the output bytes.
UNDIGESTED_FIELDS = ("jobs",)
#: Digested fields added after OUTPUT_FORMAT 1, with their defaults: they enter the digest
#: only when set, so the digests of options without them stay what earlier versions wrote.
LATER_FIELDS: dict[str, Any] = {"no_protect": (), "cuda_arch": (), "no_ptx": False,
                                "dedupe": False, "dedupe_min_size": DEFAULT_DEDUPE_MIN_SIZE}


def options_digest(options: SlimOptions, profiles: Sequence[Any],
                   output_format: int = OUTPUT_FORMAT) -> str:
    """A digest of everything that decides the output bytes; ``profiles`` are the selected
    profiles (their rules' content counts, so editing a profile file changes the digest)."""
    doc: dict[str, Any] = {"format": output_format,
                           "profiles": [_profile_doc(p) for p in profiles]}
    for name in DIGESTED_FIELDS:
        value = getattr(options, name)
        if name in LATER_FIELDS and value == LATER_FIELDS[name]:
            continue   # so the documents of earlier formats can still be computed
        if name == "dedupe_min_size" and not options.dedupe:
            continue   # it changes nothing without --dedupe
        if name == "platforms":
            value = sorted(value)
        elif name == "cuda_arch":     # h100 and sm_90 give the same bytes
            value = [g.name for g in parse_gpus(value)]
        elif isinstance(value, tuple):
            value = list(value)
        doc[name] = value
    return sha256_digest(dump_json(doc))


def _profile_doc(profile: Any) -> list[Any]:
    """A profile as the digest sees it: its rules' repr, plus the image conditions of the
    rules that have them (kept out of the repr so older rules digest as before)."""
    doc: list[Any] = [profile.name, repr(profile.rules)]
    conditions = {r.id: [list(r.if_image_has), list(r.unless_image_has)]
                  for r in profile.rules if r.if_image_has or r.unless_image_has}
    if conditions:
        doc.append(conditions)
    return doc


def option_fields() -> tuple[str, ...]:
    """Names of the SlimOptions fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(SlimOptions))
