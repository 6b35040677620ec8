"""The whole layer stack at once: the final tree, where each hardlink's data lives, and the
bytes each layer carries that the final image never shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from slimmer.errors import LayerError
from slimmer.fs.index import Rec
from slimmer.fs.overlay import Overlay, Ref, apply_layer
from slimmer.oci.layer import FILE, HARDLINK


@dataclass
class Stack:
    """The result of applying every layer in order."""

    final: Overlay
    link_src: dict[Ref, Ref]          # hardlink entry -> data-bearing entry it resolves to
    wasted: list[int | None]          # per layer: file bytes overwritten or deleted later
    final_refs: set[Ref]              # entries visible in the final tree

    def data_ref(self, ref: Ref) -> Ref:
        """The entry holding the data of ``ref`` (itself unless it is a hardlink)."""
        return self.link_src.get(ref, ref)


def walk_stack(recs: Sequence[Sequence[Rec]]) -> Stack:
    """Apply every layer's index; LayerError for a hardlink to a missing path or a directory."""
    overlay = Overlay()
    link_src: dict[Ref, Ref] = {}
    for j, layer in enumerate(recs):
        def on_entry(o: int, rec: Rec, j: int = j) -> None:
            if rec.kind != HARDLINK:
                return
            target = overlay.get(rec.linkname)
            if target is None:
                raise LayerError(f"layer {j}: hardlink {rec.path!r} points to missing "
                                 f"{rec.linkname!r}")
            if overlay.is_dir[rec.linkname]:
                raise LayerError(f"layer {j}: hardlink {rec.path!r} points to directory "
                                 f"{rec.linkname!r}")
            link_src[(j, o)] = link_src.get(target, target)
        apply_layer(overlay, j, layer, on_entry=on_entry)
    final_refs = set(overlay.entries.values())
    wasted: list[int | None] = []
    for j, layer in enumerate(recs):
        wasted.append(sum(r.size for o, r in enumerate(layer)
                          if r.kind == FILE and (j, o) not in final_refs))
    return Stack(overlay, link_src, wasted, final_refs)
