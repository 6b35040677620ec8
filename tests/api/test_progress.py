"""Progress callbacks: a plain ``(stage, done, total)`` function gets the stage totals, a
``LayerProgress`` also each layer from queued (0) to finished (done == total)."""

from __future__ import annotations

from pathlib import Path

import slimmer
from slimmer.api import LayerProgress

from support.layoututil import make_image, tagged, write_layout


class Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int, int]] = []
        self.layers: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.stages.append((stage, done, total))

    def layer(self, stage: str, name: str, done: int, total: int) -> None:
        self.layers.setdefault((stage, name), []).append((done, total))


def _image(tmp_path: Path) -> str:
    src = tmp_path / "src"
    write_layout(src, [tagged(make_image(src, [
        {"usr/share/doc/a/README": b"r" * 300_000, "app/x": bytes(range(256)) * 400},
        {"tmp/cache.bin": b"t" * 200_000}, {"etc/hello": b"hi"}]), "v1")])
    return f"oci:{src}:v1"


def test_layer_progress_follows_each_layer(tmp_path: Path) -> None:
    rec = Recorder()
    assert isinstance(rec, LayerProgress)
    slimmer.slim(_image(tmp_path), f"oci:{tmp_path}/out:v", slimmer.SlimOptions(merge="none"),
                 progress=rec)
    scans = {name: ev for (stage, name), ev in rec.layers.items() if stage == "scan"}
    builds = {name: ev for (stage, name), ev in rec.layers.items() if stage == "build"}
    assert len(scans) == 3 and len(builds) == 3
    for events in [*scans.values(), *builds.values()]:
        total = events[0][1]
        assert events[0] == (0, total) and events[-1] == (total, total)
        dones = [d for d, _ in events]
        assert dones == sorted(dones) and all(t == total for _, t in events)
    assert any(len(ev) > 2 for ev in scans.values())     # bytes went by, not only 0 and end
    assert ("scan", 3, 3) in rec.stages
    assert rec.stages[-1][0] == "build"


def test_a_plain_callback_still_works(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    slimmer.analyze(_image(tmp_path), progress=lambda s, d, t: calls.append((s, d, t)))
    assert calls[-1] == ("scan", 3, 3)
