"""The heap trim that keeps a big layer's peak RSS down: rate-limited process-wide, and off
when asked (the switch the benchmark uses)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from slimmer.codec import memory


def test_trims_at_most_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_trim", calls.append)
    monkeypatch.setattr(memory, "_last", 0.0)
    for _ in range(100):
        memory.release_free_memory()
    assert calls == [0]
    monkeypatch.setattr(memory, "_last", 0.0)     # the interval has passed
    memory.release_free_memory()
    assert calls == [0, 0]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_off_switch_and_glibc() -> None:
    code = "from slimmer.codec import memory; print(memory._trim is None)"
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SLIMMER_MALLOC_TRIM": "0"}, check=True)
    assert off.stdout.strip() == "True"
    on = subprocess.run([sys.executable, "-c", code + "; memory.release_free_memory()"],
                        capture_output=True, text=True, env={}, check=True)
    assert on.stdout.strip() == "False"
