"""Helpers shared by the tests: image builders, fakes and the real servers they start."""

from pathlib import Path

#: The repository root (testdata/, scripts/).
REPO = Path(__file__).resolve().parents[2]
