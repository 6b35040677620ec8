"""Pruning fat binaries in place while a file streams: the output against a model of the
edit, whatever the chunking; a file that changed since the scan is an error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimmer.build.cudarewrite import ContentRewriter
from slimmer.codec.cudascan import scan_fatbins
from slimmer.codec.fatbin import header_bytes
from slimmer.errors import LayerError
from slimmer.gpu.model import CudaFile
from slimmer.plan.model import ContainerEdit, Rewrite

from support.fatbins import FIXTURE, container, cubin, cuda_elf, ptx


def scanned(data: bytes) -> CudaFile:
    scanner = scan_fatbins(data[:64], len(data))
    assert scanner is not None
    scanner.feed(data)
    cuda = scanner.finish()
    assert cuda is not None and cuda.problem is None
    return cuda


def keep_every_other(cuda: CudaFile, size: int) -> Rewrite:
    edits = tuple(ContainerEdit(c.offset, c.size, tuple(
        (e.offset, e.size) for i, e in enumerate(c.entries) if i % 2 == 0))
        for c in cuda.containers)
    return Rewrite(size, edits)


def model(data: bytes, rewrite: Rewrite) -> bytes:
    """The expected bytes: each container rebuilt from its kept entries, zeros after."""
    out = bytearray(data)
    for edit in rewrite.edits:
        body = b"".join(data[o:o + n] for o, n in edit.keep)
        new = header_bytes(len(body)) + body
        out[edit.offset:edit.offset + edit.size] = new + bytes(edit.size - len(new))
    return bytes(out)


def run(data: bytes, rewrite: Rewrite, chunk: int) -> bytes:
    parts: list[bytes] = []
    rw = ContentRewriter(rewrite, lambda b: parts.append(bytes(b)), "test")
    for i in range(0, len(data), chunk):
        rw.feed(data[i:i + chunk])
    rw.close()
    return b"".join(parts)


DATA = cuda_elf(container([cubin(75), cubin(80), ptx(80), cubin(90), cubin(90, "a")]),
                container([cubin(100, compressed=True), cubin(120, compressed=True)], 7))


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=700))
def test_output_matches_the_model_for_any_chunking(chunk: int) -> None:
    rewrite = keep_every_other(scanned(DATA), len(DATA))
    out = run(DATA, rewrite, chunk)
    assert out == model(DATA, rewrite) and len(out) == len(DATA)
    again = scanned(out)      # the result is a valid file whose containers hold what was kept
    assert [[e.label for e in c.entries] for c in again.containers] == [
        ["sm_75", "compute_80", "sm_90a"], ["sm_100"]]
    assert [c.offset for c in again.containers] == [c.offset for c in scanned(DATA).containers]


def test_the_real_fixture_keeps_its_size() -> None:
    data = FIXTURE.read_bytes()
    rewrite = keep_every_other(scanned(data), len(data))
    out = run(data, rewrite, 4096)
    assert out == model(data, rewrite)
    assert rewrite.blanked == sum(e.size - e.kept_size for e in rewrite.edits) > 0


def test_changed_input_is_an_error() -> None:
    rewrite = keep_every_other(scanned(DATA), len(DATA))
    changed = bytearray(DATA)
    changed[rewrite.edits[0].offset + 8] ^= 1
    with pytest.raises(LayerError, match="changed since the scan"):
        run(bytes(changed), rewrite, 1 << 20)
    with pytest.raises(LayerError, match="shorter"):
        run(DATA[:-10], rewrite, 1 << 20)
    with pytest.raises(LayerError, match="longer"):
        run(DATA + b"x", rewrite, 1 << 20)
