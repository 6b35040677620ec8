"""Which input layers become one output layer: runs of adjacent layers, order never changes."""

from __future__ import annotations

from typing import Sequence

from slimmer.oci.media import FOREIGN_LAYER_TYPES
from slimmer.options import MergeMode
from slimmer.plan.model import PlanOptions


def group_layers(sizes: Sequence[int], media_types: Sequence[str],
                 options: PlanOptions) -> list[tuple[int, ...]]:
    """Split input layers into runs to merge.

    Base layers and foreign layers stay alone; ``auto`` merges runs of adjacent layers smaller
    than the threshold, ``all`` merges every non-base layer, ``none`` merges nothing.
    """
    groups: list[tuple[int, ...]] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            groups.append(tuple(run))
            run.clear()

    for i, size in enumerate(sizes):
        alone = (i < options.base or media_types[i] in FOREIGN_LAYER_TYPES
                 or options.merge == MergeMode.NONE
                 or (options.merge == MergeMode.AUTO and size >= options.merge_threshold))
        if alone:
            flush()
            groups.append((i,))
        else:
            run.append(i)
    flush()
    return groups


def kept_layers(media_types: Sequence[str], options: PlanOptions) -> set[int]:
    """Input layers that pass through untouched whatever the rules say: foreign layers, and
    the base layers with ``keep_base``."""
    return {i for i, media_type in enumerate(media_types)
            if media_type in FOREIGN_LAYER_TYPES or (options.keep_base and i < options.base)}
