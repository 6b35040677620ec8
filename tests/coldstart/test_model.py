"""The cold-start result model: medians, the modelled total, the JSON form and its round trip,
the table, and how a push report carries the comparison (only when there is one)."""

from __future__ import annotations

import json

import pytest

from slimmer.coldstart.model import SCHEMA, ColdstartReport, ImageColdstart, RunTimes
from slimmer.report.model import Report
from slimmer.units import parse_bandwidth


def image(name: str, runs: list[RunTimes], size: int = 125_000_000, **kw: object) -> ImageColdstart:
    return ImageColdstart(name, "sha256:" + "ab" * 32, "linux/amd64", size, 3 * size, 1000, 4,
                          runs, **kw)  # type: ignore[arg-type]


def report(images: list[ImageColdstart], runtime: str = "containerd") -> ColdstartReport:
    return ColdstartReport(runtime, "1.6.20", None, False, 3, parse_bandwidth("1Gbit"), "exit",
                           [], None, None, 300.0, images)


def test_medians_and_the_modelled_total() -> None:
    img = image("a", [RunTimes(1.0, 2.0, 0.5), RunTimes(3.0, 2.0, 0.5), RunTimes(2.0, 9.0, 0.1)])
    assert img.median("pull") == 2.0
    assert img.median("unpack") == 2.0
    assert img.median("start") == 0.5
    # the median of the run totals (3.5, 5.5, 11.1), not the sum of the medians (4.5)
    assert img.median("total") == 5.5
    # 125 MB at 1 Gbit/s (125 MB/s) is one second on top of the measured median
    assert img.modelled_total(parse_bandwidth("1Gbit")) == pytest.approx(6.5)
    assert img.modelled_total(parse_bandwidth("100Mbit")) == pytest.approx(15.5)


def test_the_proxy_has_no_start_and_its_total_is_pull_plus_unpack() -> None:
    img = image("a", [RunTimes(1.0, 2.0, None)])
    assert img.median("start") is None
    assert img.median("total") == 3.0


def test_json_round_trip_and_schema() -> None:
    failed = image("b", [], error="exited with status 3", output=["probe: giving up"])
    doc = report([image("a", [RunTimes(1.0, 2.0, 0.5)], role="source"), failed]).to_dict()
    assert doc["schema"] == SCHEMA
    assert doc["images"][0]["median"] == {"pull": 1.0, "unpack": 2.0, "start": 0.5,
                                          "total": 3.5}
    assert doc["images"][0]["runs"] == [{"pull": 1.0, "unpack": 2.0, "start": 0.5,
                                         "total": 3.5}]
    assert doc["images"][1]["modelled_total"] is None
    back = ColdstartReport.from_dict(json.loads(json.dumps(doc)))
    assert back.to_dict() == doc
    assert not back.ok and [i.image for i in back.failed] == ["b"]
    with pytest.raises(ValueError):
        ColdstartReport.from_dict({"schema": "other"})


def test_the_table_compares_two_images_and_shows_why_one_failed() -> None:
    a = image("oci:orig", [RunTimes(2.0, 8.0, 1.0)], size=250_000_000)
    b = image("oci:slim", [RunTimes(1.0, 4.0, 1.0)])
    text = report([a, b]).render_text()
    assert "[1] oci:orig" in text and "[2] oci:slim" in text
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert total.split()[-1] == "0.55x"  # 6 s / 11 s
    modelled = next(line for line in text.splitlines() if line.strip().startswith("at 1 Gbit"))
    assert modelled.split()[-1] == "0.54x"  # (6 + 1) / (11 + 2)
    failed = image("oci:broken", [], error="exited with status 3", output=["config missing"])
    text = report([a, failed]).render_text()
    assert "[2] did not start: exited with status 3" in text
    assert "config missing" in text


def test_a_push_report_carries_the_comparison_only_when_there_is_one() -> None:
    plain = Report("push", "oci:a", "oci:b", "sha256:" + "1" * 64, "sha256:" + "2" * 64, [],
                   ["docs"], [])
    doc = plain.to_dict()
    assert "coldstart" not in doc and "smoke" not in doc   # reports without it stay as they were
    assert Report.from_dict(doc).to_dict() == doc
    plain.coldstart = report([image("a", [RunTimes(1.0, 1.0, 1.0)], role="source"),
                              image("b", [RunTimes(1.0, 0.5, 1.0)], role="result")])
    plain.smoke = {"cmd": ["/probe", "need", "/etc/app.conf"], "seconds": 0.4,
                   "runtime": "containerd 1.6.20"}
    doc = json.loads(json.dumps(plain.to_dict()))
    assert doc["coldstart"]["schema"] == SCHEMA
    back = Report.from_dict(doc)
    assert back.to_dict() == doc
    text = back.render_text()
    assert "smoke test passed: /probe need /etc/app.conf" in text
    assert "(source)" in text and "(result)" in text
