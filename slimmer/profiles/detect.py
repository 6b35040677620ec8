"""What kind of machine-learning image an image is, from the paths of its final tree: the
stacks that make ``slim analyze`` list the profiles of category "ml" for it."""

from __future__ import annotations

from typing import Iterable

from slimmer.profiles.matcher import present_globs

#: Stack -> globs (FORMAT.md syntax) of which any one marks an image as holding it.
ML_MARKERS: dict[str, tuple[str, ...]] = {
    "torch": ("site-packages/torch/__init__.py", "dist-packages/torch/__init__.py"),
    "tensorflow": ("site-packages/tensorflow/__init__.py",
                   "dist-packages/tensorflow/__init__.py"),
    "jax": ("site-packages/jax/__init__.py", "dist-packages/jax/__init__.py",
            "site-packages/jaxlib/__init__.py", "dist-packages/jaxlib/__init__.py"),
    "cuda": ("libcudart.so*", "libcublas.so*", "libcudnn.so*"),
    "rocm": ("libamdhip64.so*",),
}


def detect_ml(paths: Iterable[str]) -> list[str]:
    """The ML stacks (keys of ``ML_MARKERS``, in that order) an image whose final tree holds
    ``paths`` (absolute, normalised) contains; empty for an image that is not an ML image."""
    found = present_globs([g for globs in ML_MARKERS.values() for g in globs], paths)
    return [name for name, globs in ML_MARKERS.items() if found.intersection(globs)]
