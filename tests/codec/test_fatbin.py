"""The fat binary container format and the streaming scan of ELF files for it, on synthetic
containers and ELF files the tests build, and on the real nvcc output in testdata/cuda."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimmer.codec.cudascan import scan_fatbins
from slimmer.codec.fatbin import (
    MAGIC_BYTES,
    FormatError,
    entry_arch,
    entry_problem,
    header_bytes,
    parse_entry_base,
    parse_header,
)
from slimmer.gpu.arch import Arch, Variant
from slimmer.gpu.model import CudaFile

from support.fatbins import FIXTURE, Code, container, cubin, cuda_elf, elf, entry, ptx


def scan(data: bytes, chunk: int = 1 << 20) -> CudaFile | None:
    scanner = scan_fatbins(data[:64], len(data))
    if scanner is None:
        return None
    for i in range(0, len(data), chunk):
        scanner.feed(memoryview(data)[i:i + chunk])
    return scanner.finish()


def labels(cuda: CudaFile) -> list[list[str]]:
    return [[e.label for e in c.entries] for c in cuda.containers]


# -- headers ------------------------------------------------------------------------------

def test_container_and_entry_headers_round_trip() -> None:
    data = container([cubin(90, "a", 100), ptx(80)])
    assert parse_header(data) == len(data) - 16
    e = parse_entry_base(data[16:])
    assert (e.kind, e.arch, e.size, e.compressed) == (2, 90, 64 + 104, False)
    assert entry_arch(e) == Arch(9, 0, Variant.SPECIFIC) and entry_problem(e) is None
    f = parse_entry_base(entry(cubin(100, "f", compressed=True), 1))
    assert entry_arch(f) == Arch(10, 0, Variant.FAMILY) and f.compressed
    assert f.header_size == 112 and entry_problem(f) is None


@pytest.mark.parametrize("raw, why", [
    (b"\0" * 16, "magic"),
    (MAGIC_BYTES + struct.pack("<HHQ", 2, 16, 64), "version"),
    (MAGIC_BYTES + struct.pack("<HHQ", 1, 24, 64), "header size"),
    (MAGIC_BYTES + struct.pack("<HHQ", 1, 16, 13), "multiple of 8"),
])
def test_bad_container_headers(raw: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        parse_header(raw)


def test_entry_problems() -> None:
    odd_kind = parse_entry_base(entry(Code(8, 90), 1))
    assert entry_problem(odd_kind) == "unknown entry kind 8"
    raw = bytearray(entry(cubin(90, compressed=True), 1))
    struct.pack_into("<I", raw, 16, 10_000)          # compressed size above the payload
    assert "do not add up" in (entry_problem(parse_entry_base(raw)) or "")
    raw = bytearray(entry(cubin(90), 1))
    struct.pack_into("<Q", raw, 40, 0x11 | 0x8000 | 0x2000)
    assert "two compressions" in (entry_problem(parse_entry_base(raw)) or "")
    raw = bytearray(entry(cubin(90), 1))
    struct.pack_into("<H", raw, 2, 0x0202)
    with pytest.raises(FormatError, match="entry version"):
        parse_entry_base(raw)


# -- the streaming scan ---------------------------------------------------------------------

def test_scan_finds_every_container_of_the_section() -> None:
    a = container([cubin(75), cubin(80), cubin(90), cubin(90, "a"), ptx(80), ptx(120)])
    b = container([cubin(100, compressed=True), cubin(120, compressed=True)], first_fill=9)
    data = cuda_elf(a, b)
    cuda = scan(data)
    assert cuda is not None and cuda.problem is None
    assert labels(cuda) == [["sm_75", "sm_80", "sm_90", "sm_90a", "compute_80", "compute_120"],
                            ["sm_100", "sm_120"]]
    start = data.index(a)
    assert [(c.offset, c.size) for c in cuda.containers] == [(start, len(a)),
                                                           (start + len(a), len(b))]
    assert [s.name for s in cuda.sections] == [".nv_fatbin", ".nvFatBinSegment"]
    assert cuda.code_bytes == len(a) + len(b)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.booleans())
def test_scan_does_not_depend_on_chunking(chunk: int, late_names: bool) -> None:
    boxes = [container([cubin(80, size=33), ptx(90, size=7)]),
             container([cubin(90, size=64)], first_fill=5)]
    text = b"\x90" * 37 + MAGIC_BYTES + b"\x01\x00\x10\x00" + b"\xff" * 40   # a chance magic
    data = elf([(".text", text), (".nv_fatbin", b"".join(boxes))],
               names_after_table=late_names)
    assert scan(data, chunk) == scan(data)
    cuda = scan(data)
    assert cuda is not None and cuda.problem is None and len(cuda.containers) == 2


def test_a_chance_container_outside_the_section_is_ignored() -> None:
    fake = b"\0" * 8 + container([cubin(80)])             # parses, but lies in .rodata
    data = elf([(".rodata", fake), (".nv_fatbin", container([cubin(90)]))])
    cuda = scan(data)
    assert cuda is not None and cuda.problem is None and labels(cuda) == [["sm_90"]]


def test_a_swallowed_container_makes_a_problem() -> None:
    # A chance header in .text whose size reaches into .nv_fatbin hides the real container:
    # the section is then not tiled by what the scan saw, and the file is not touched.
    fake = header_bytes(400) + entry(cubin(80, size=300), 1)[:64]
    data = elf([(".text", fake), (".nv_fatbin", container([cubin(90)]))])
    cuda = scan(data)
    assert cuda is not None and "not fat binary containers" in (cuda.problem or "")


@pytest.mark.parametrize("damage, why", [
    ("truncate", "not one run of containers"),
    ("overrun", "runs past its container"),
    ("kind", "unknown entry kind 7"),
    ("garbage", "bytes that are not fat binary containers"),
])
def test_malformed_containers_are_problems(damage: str, why: str) -> None:
    good = container([cubin(80), cubin(90)])
    if damage == "truncate":
        section = good[:-40]
    elif damage == "overrun":
        raw = bytearray(good)
        struct.pack_into("<Q", raw, 16 + 64 + 200 + 8, 10_000)   # the second entry's size
        section = bytes(raw)
    elif damage == "kind":
        section = container([cubin(80), Code(7, 90)])
    else:
        section = good + b"\x01" * 64
    cuda = scan(cuda_elf(section))
    assert cuda is not None and why in (cuda.problem or "")


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_empty_containers_and_zero_padding_are_what_pruning_leaves(chunk: int) -> None:
    one, two = container([cubin(90)]), container([cubin(80)], 4)
    section = header_bytes(0) + bytes(40) + one + bytes(64) + two + bytes(24)
    cuda = scan(cuda_elf(section), chunk)
    assert cuda is not None and cuda.problem is None
    assert labels(cuda) == [[], ["sm_90"], ["sm_80"]]
    assert [c.size for c in cuda.containers] == [16, len(one), len(two)]


def test_files_without_fat_binaries() -> None:
    assert scan(elf([(".text", b"\x90" * 100)])) is None
    assert scan(elf([(".nv_fatbin", b"")])) is None
    assert scan_fatbins(b"#!/bin/sh\n" + bytes(100), 110) is None
    assert scan_fatbins(b"\x7fELF\x01\x01" + bytes(58), 64) is None       # 32-bit
    data = cuda_elf(container([cubin(90)]))
    assert scan_fatbins(data[:64], len(data) - 100) is None                # table past the end


def test_the_real_fixture() -> None:
    cuda = scan(FIXTURE.read_bytes(), 4096)
    assert cuda is not None and cuda.problem is None
    assert labels(cuda) == [
        ["sm_75", "sm_80", "compute_80", "sm_86", "sm_90", "sm_90a", "sm_100f", "compute_120"],
        ["sm_80", "sm_90", "sm_100", "sm_100a", "sm_120", "compute_120"]]
    assert [e.compressed for e in cuda.containers[1].entries] == [True] * 6
    assert not any(e.compressed for e in cuda.containers[0].entries)
