"""CUDA architectures and which GPU code runs where: the pure policy behind ``--cuda-arch``.

A GPU has a compute capability ``major.minor`` (sm_90 is 9.0, sm_121 is 12.1). GPU code in a
fat binary is either a cubin (machine code for one architecture) or PTX (virtual code the
driver compiles for the GPU at load time). The rules, from NVIDIA's CUDA compatibility guide:

- a cubin runs on GPUs of the same major version whose minor is not below its own: sm_80 runs
  on sm_86, not on sm_90; the loader takes the highest such minor;
- an arch-specific cubin (``sm_90a``) runs only on exactly that GPU;
- a family-specific cubin (``sm_100f``, CUDA 12.9+) runs on the GPUs of its family (same major)
  whose minor is not below its own: sm_100f on sm_100 and sm_103;
- PTX for ``compute_XY`` can be compiled for any GPU of compute capability XY or above (the
  ``a`` and ``f`` variants with the same limits as their cubins).

Between two compatible cubins of the same minor, the more specific one is taken (``a`` over
``f`` over plain), since a library ships it only to be used on that GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable, Sequence

from slimmer.errors import UsageError


class Variant(StrEnum):
    """Which GPUs code for one architecture targets besides the rules for its number."""

    GENERIC = ""     # sm_90: same major, minor not below
    FAMILY = "f"     # sm_100f: same major, minor not below, family features
    SPECIFIC = "a"   # sm_90a: exactly this GPU


_RANK = {Variant.GENERIC: 0, Variant.FAMILY: 1, Variant.SPECIFIC: 2}


@dataclass(frozen=True, order=True)
class Arch:
    """One architecture: compute capability ``major.minor`` and a variant."""

    major: int
    minor: int
    variant: Variant = Variant.GENERIC

    @classmethod
    def of_number(cls, number: int, variant: Variant = Variant.GENERIC) -> "Arch":
        """From the number a fat binary stores (90 for sm_90, 121 for sm_121)."""
        return cls(number // 10, number % 10, variant)

    @property
    def number(self) -> int:
        return self.major * 10 + self.minor

    @property
    def name(self) -> str:
        """``sm_90a``; the same name stands for the cubin and, as compute_90a, its PTX."""
        return f"sm_{self.number}{self.variant.value}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, order=True)
class Gpu:
    """A GPU the image will run on: its compute capability."""

    major: int
    minor: int

    @property
    def name(self) -> str:
        return f"sm_{self.major * 10 + self.minor}"

    def __str__(self) -> str:
        return self.name


def runs_cubin(code: Arch, gpu: Gpu) -> bool:
    """Whether a cubin for ``code`` runs on ``gpu`` (binary compatibility)."""
    if code.major != gpu.major:
        return False
    if code.variant == Variant.SPECIFIC:
        return code.minor == gpu.minor
    return code.minor <= gpu.minor


def jits_ptx(code: Arch, gpu: Gpu) -> bool:
    """Whether PTX for ``code`` can be compiled for ``gpu`` by the driver."""
    if code.variant == Variant.GENERIC:
        return (code.major, code.minor) <= (gpu.major, gpu.minor)
    return runs_cubin(code, gpu)


def cubin_rank(code: Arch) -> tuple[int, int]:
    """Among compatible cubins the highest rank is loaded: highest minor, then most specific."""
    return code.minor, _RANK[code.variant]


def ptx_rank(code: Arch) -> tuple[int, int, int]:
    """Among usable PTX the newest is kept: highest compute capability, then most specific."""
    return code.major, code.minor, _RANK[code.variant]


#: The GPUs ``--cuda-arch`` knows by number (Maxwell to Blackwell and Thor).
KNOWN_GPUS = (50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 88, 89, 90, 100, 101, 103, 110,
              120, 121)

#: Friendly names: one table, shown by ``slim push --help`` and README.
ALIASES: dict[str, int] = {
    "p100": 60, "v100": 70, "t4": 75,
    "a100": 80, "a30": 80, "a800": 80, "a10": 86, "a10g": 86, "a40": 86, "a2": 86,
    "rtx3090": 86, "orin": 87, "l4": 89, "l40": 89, "l40s": 89, "rtx4090": 89,
    "h100": 90, "h200": 90, "h800": 90, "h20": 90, "gh200": 90,
    "b200": 100, "gb200": 100, "b300": 103, "gb300": 103, "thor": 110,
    "rtx5090": 120, "rtx-pro-6000": 120, "gb10": 121,
}

_NAME = re.compile(r"(?:sm_|compute_)?(\d{2,3})([af]?)")


def known_names() -> list[str]:
    """Every name ``parse_gpus`` accepts, for the usage error."""
    return [f"sm_{n}" for n in KNOWN_GPUS] + sorted(ALIASES)


def parse_gpu(text: str) -> Gpu:
    """A GPU from ``sm_90``, ``sm_90a``, ``compute_90``, ``90`` or an alias (``h100``); an
    ``a``/``f`` suffix names the same GPU. UsageError listing the known names otherwise."""
    name = text.strip().lower()
    number = ALIASES.get(name)
    if number is None:
        m = _NAME.fullmatch(name)
        if m is not None and int(m.group(1)) in KNOWN_GPUS:
            number = int(m.group(1))
    if number is None:
        raise UsageError(f"--cuda-arch: unknown GPU architecture {text!r} (known: "
                         f"{', '.join(known_names())})")
    return Gpu(number // 10, number % 10)


def parse_gpus(values: Iterable[str]) -> tuple[Gpu, ...]:
    """The GPUs of ``--cuda-arch`` values (each may be a comma list), sorted, no duplicates."""
    gpus = {parse_gpu(part) for value in values for part in value.split(",") if part.strip()}
    if not gpus and any(v.strip() for v in values):
        raise UsageError("--cuda-arch: no architecture given")
    return tuple(sorted(gpus))


@dataclass(frozen=True)
class Choice:
    """What one container keeps for the GPUs: the indexes of its entries to keep, and the
    GPUs that would find neither a cubin nor PTX they can use in it."""

    keep: frozenset[int]
    unserved: tuple[Gpu, ...]


def choose(codes: Sequence[tuple[bool, Arch]], gpus: Sequence[Gpu], ptx: bool = True) -> Choice:
    """Pick the entries of one fat binary container to keep. ``codes`` lists its entries as
    (is_cubin, arch); PTX entries are kept only when ``ptx`` is true."""
    keep: set[int] = set()
    unserved: list[Gpu] = []
    for gpu in gpus:
        cubins = [i for i, (cubin, a) in enumerate(codes) if cubin and runs_cubin(a, gpu)]
        usable = [i for i, (cubin, a) in enumerate(codes) if not cubin and jits_ptx(a, gpu)]
        if cubins:
            keep.add(max(cubins, key=lambda i: (cubin_rank(codes[i][1]), -i)))
        if usable and ptx:
            keep.add(max(usable, key=lambda i: (ptx_rank(codes[i][1]), -i)))
        if not cubins and not (usable and ptx):
            unserved.append(gpu)
    return Choice(frozenset(keep), tuple(unserved))
