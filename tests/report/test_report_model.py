"""The report model's additions of this round stay backward compatible: documents without
``level``, ``cached`` or ``variant`` still load; the attached form leaves out run details;
totals count the first compression variant only."""

from __future__ import annotations

from pathlib import Path

import slimmer
from slimmer.options import SlimOptions
from slimmer.report.model import Report

EXAMPLE = "oci:testdata/example:latest"


def test_old_documents_load_and_run_details_stay_out_of_attachments(tmp_path: Path) -> None:
    report = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'o'}:v", cache=False)
    doc = report.to_dict()
    assert doc["images"][0]["layers"][0]["level"] == 2
    assert doc["images"][0]["layers"][0]["cached"] is False
    assert doc["images"][0]["variant"] is None
    old = report.to_dict()
    for image in old["images"]:
        del image["variant"]
        for layer in image["layers"]:
            del layer["level"], layer["cached"]
    loaded = Report.from_dict(old)
    assert loaded.images[0].layers[0].level is None and not loaded.images[0].layers[0].cached
    attached = report.to_dict(run_details=False)
    assert "cached" not in attached["images"][0]["layers"][0]
    assert attached["images"][0]["layers"][0]["level"] == 2


def test_totals_count_the_first_variant(tmp_path: Path) -> None:
    dual = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'd'}:v", SlimOptions(compression="gzip+zstd"),
                        cache=False)
    gz = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'g'}:v", SlimOptions(compression="gzip"),
                      cache=False)
    assert [i.variant for i in dual.images] == [None, "zstd"]
    assert dual.size_after == gz.size_after and dual.size_before == gz.size_before
    assert dual.images[1].size_after is not None and dual.images[1].size_after < gz.size_after
    text = dual.render_text()
    assert "(zstd variant of the image above)" in text


def test_the_tree_is_built_once_on_first_read(tmp_path: Path, monkeypatch) -> None:
    import slimmer.report.summary as summary
    calls = []
    real = summary.build_tree

    def counting(files):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(files)

    monkeypatch.setattr(summary, "build_tree", counting)
    report = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'o'}:v", cache=False)
    assert calls == []                       # the push and its text summary do not need it
    report.render_text()
    assert calls == []
    doc = report.to_dict()
    tree = doc["images"][0]["tree"]
    assert calls == [1] and tree["root"]["size"] > 0 and tree == report.images[0].tree
    assert calls == [1]
    assert Report.from_dict(doc).images[0].tree == tree
