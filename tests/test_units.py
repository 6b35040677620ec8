"""The one units grammar: sizes, durations, bandwidths, and how sizes are shown."""

from __future__ import annotations

import pytest

from slimmer.units import format_duration, format_size, parse_bandwidth, parse_duration, parse_size

MiB = 1 << 20


@pytest.mark.parametrize("value, expected", [
    (0, 0), (17, 17), ("17", 17), ("1KB", 1000), ("1 KiB", 1024), ("1MiB", MiB),
    ("1.5MiB", 3 * MiB // 2), ("2GB", 2 * 10**9), ("1gib", 1024**3), ("10 B", 10),
    ("16M", 16_000_000), ("16Mi", 16 * MiB), ("1.5G", 1_500_000_000), ("4k", 4000),
])
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "MiB", "1 XB", "-1", "1e6", 1.5, None, False, [1],
                                   "16 MiBs", "1GiBB"])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="not a size|negative"):
        parse_size(value)


@pytest.mark.parametrize("value, expected", [
    (10, 10.0), (2.5, 2.5), ("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0),
    ("250ms", 0.25), ("1d", 86400.0),
])
def test_parse_duration(value: object, expected: float) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["", "s", "5 minutes", -1, True, "1e3"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value, expected", [
    ("1Gbit", 125_000_000), ("100Mbit/s", 12_500_000), ("1Gbps", 125_000_000),
    ("125MB/s", 125_000_000), ("50MiB/s", 50 * MiB), ("8000", 1000),
])
def test_parse_bandwidth(value: str, expected: float) -> None:
    assert parse_bandwidth(value) == expected


@pytest.mark.parametrize("value", ["", "fast", "1 XB/s", "1Gbit/h"])
def test_parse_bandwidth_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="not a bandwidth"):
        parse_bandwidth(value)


def test_format_size() -> None:
    assert format_size(None) == "-"
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 * MiB) == "3.0 MiB"
    assert format_size(1536, exact=True) == "1536 B"
    assert format_size(MiB, exact=True) == "1 MiB"
    assert format_size(2 << 30, exact=True) == "2 GiB"


def test_format_duration() -> None:
    assert format_duration(0.25) == "250 ms"
    assert format_duration(12.34) == "12.3 s"
    assert format_duration(245) == "4m05s"
