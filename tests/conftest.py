"""Test configuration: hypothesis profiles (SLIMMER_HYPOTHESIS=deep for long property runs),
and a layer cache of each test's own (``XDG_CACHE_HOME``), so no test reads the user's cache
or another test's results."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("SLIMMER_HYPOTHESIS", "default"))

# Module- and session-scoped fixtures run before the per-test fixture below: they get this one.
_SESSION_CACHE = tempfile.mkdtemp(prefix="slimmer-test-cache-")
os.environ["XDG_CACHE_HOME"] = _SESSION_CACHE


@pytest.fixture(autouse=True)
def own_layer_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Path]:
    """Every test starts with an empty layer cache."""
    directory = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(directory))
    yield directory


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)
