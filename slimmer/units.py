"""The one grammar for sizes, durations and bandwidths that the CLI, profile files and the hook
config share, and the one way sizes are shown to people.

Sizes: a number of bytes (``4096``) or a number with a unit, case-insensitive, optional space:
``B``; ``K``/``KB``, ``M``/``MB``, ``G``/``GB``, ``T``/``TB`` (powers of 1000); ``Ki``/``KiB``,
``Mi``/``MiB``, ``Gi``/``GiB``, ``Ti``/``TiB`` (powers of 1024). Fractions are allowed
(``1.5GiB``); the result is rounded down to whole bytes.

Durations: seconds (``30``, ``2.5``) or a number with ``ms``, ``s``, ``m``, ``h`` or ``d``.

Bandwidths: bits or bytes per second, ``1Gbit``, ``100Mbit/s``, ``1Gbps``, ``125MB/s``,
``50MiB/s`` (a size per second); a bare number is bits per second. The result is bytes/s.
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_SIZE_RE = re.compile(r"^\s*" + _NUMBER + r"\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
    "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2,
    "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4,
}
_DURATION_RE = re.compile(r"^\s*" + _NUMBER + r"\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS: dict[str | None, Fraction] = {
    "ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600),
    "d": Fraction(86400), None: Fraction(1)}
_BITS_RE = re.compile(r"^\s*" + _NUMBER + r"\s*(?:([kmgtKMGT]?)(?:bit|bps|Bit|Bps)(?:/s)?)?\s*$")
_BYTES_RE = re.compile(r"^\s*" + _NUMBER + r"\s*([kmgtKMGT]?i?)B/s\s*$")
_PREFIX = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "ki": 1024,
           "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}
SIZE_EXAMPLES = "examples: 16MiB, 10MB, 1.5G, 4096"


def parse_size(value: object) -> int:
    """Bytes from an int or a size string (see the module docstring); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r} ({SIZE_EXAMPLES})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative size {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(Fraction(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"not a size: {value!r} ({SIZE_EXAMPLES})")


def parse_duration(value: object) -> float:
    """Seconds from a number or a duration string (``30s``, ``5m``, ``250ms``)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (examples: 30s, 5m, 1.5h, 250ms, 10)")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"negative duration {value}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            unit = m.group(2).lower() if m.group(2) else None
            return float(Fraction(m.group(1)) * _DURATION_UNITS[unit])
    raise ValueError(f"not a duration: {value!r} (examples: 30s, 5m, 1.5h, 250ms, 10)")


def parse_bandwidth(value: object) -> float:
    """Bytes per second from ``1Gbit``, ``100Mbit/s``, ``1Gbps`` (bits) or ``125MB/s``,
    ``50MiB/s`` (bytes); a bare number is bits per second."""
    if isinstance(value, str):
        m = _BYTES_RE.match(value)
        if m and m.group(2).lower() in _PREFIX:
            return float(Fraction(m.group(1)) * _PREFIX[m.group(2).lower()])
        m = _BITS_RE.match(value)
        if m:
            return float(Fraction(m.group(1)) * _PREFIX[(m.group(2) or "").lower()] / 8)
    raise ValueError(f"not a bandwidth: {value!r} (examples: 1Gbit, 100Mbit/s, 125MB/s)")


def format_bandwidth(bytes_per_second: float) -> str:
    """A bandwidth for people, in bits per second: ``1 Gbit/s``, ``250 Mbit/s``."""
    bits = bytes_per_second * 8
    for unit, factor in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= factor:
            return f"{bits / factor:.4g} {unit}"
    return f"{bits:.4g} bit/s"


def format_size(n: int | None, exact: bool = False) -> str:
    """Bytes in binary units for people: ``1.5 MiB`` (one decimal); ``exact`` shows a whole
    unit only when the value is a multiple of it (``1 MiB``, ``1536 B``); None is ``-``."""
    if n is None:
        return "-"
    if exact:
        for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if n >= factor and n % factor == 0:
                return f"{n // factor} {unit}"
        return f"{n} B"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def format_duration(seconds: float) -> str:
    """Seconds for people: ``850 ms``, ``12.3 s``, ``4m05s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"
