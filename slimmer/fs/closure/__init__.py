"""The static closure: what the image needs at run time, computed from the image itself
(nothing is run) and never stripped. Facts are collected during the one scan pass
(``collect``); ``compute_closure`` walks them over the final tree (``walk``) and returns a
``Closure`` whose every path has a chain back to a starting point."""

from slimmer.fs.closure.graph import Closure, Link, Need
from slimmer.fs.closure.walk import compute_closure

__all__ = ["Closure", "Link", "Need", "compute_closure"]
