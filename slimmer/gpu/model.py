"""What a fat binary holds, as plain records: made by the codec's parser, read by the plan."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from slimmer.gpu.arch import Arch


class EntryKind(IntEnum):
    """The kind of code a fat binary entry carries (the entry header's first field)."""

    PTX = 1
    CUBIN = 2


@dataclass(frozen=True, slots=True)
class FatbinEntry:
    """One entry of a container: ``offset`` (in the file) and ``size`` cover its header and
    payload; ``kind`` is the raw kind number (an EntryKind when known)."""

    offset: int
    size: int
    kind: int
    arch: Arch
    compressed: bool

    @property
    def is_cubin(self) -> bool:
        return self.kind == EntryKind.CUBIN

    @property
    def label(self) -> str:
        """``sm_90`` for a cubin, ``compute_90`` for PTX."""
        return self.arch.name if self.is_cubin else "compute_" + self.arch.name[3:]


@dataclass(frozen=True, slots=True)
class FatbinContainer:
    """One fat binary container (header and entries) at ``offset`` in the file."""

    offset: int
    size: int
    entries: tuple[FatbinEntry, ...]


@dataclass(frozen=True)
class FatbinSection:
    """An ELF section that holds fat binaries (or their wrappers), by file range."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class CudaFile:
    """The fat binaries of one ELF file. ``problem`` says why the file cannot be rewritten
    safely (a malformed or truncated container, an unknown entry kind, a compressed entry whose
    header does not add up); such a file is left byte-identical."""

    sections: tuple[FatbinSection, ...]
    containers: tuple[FatbinContainer, ...]
    problem: str | None = None

    @property
    def code_bytes(self) -> int:
        """Bytes of all containers."""
        return sum(c.size for c in self.containers)
