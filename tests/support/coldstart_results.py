"""Cold-start results built by hand (the ``coldstart.model`` objects), for tests of what shows
them: no containerd run, known numbers."""

from __future__ import annotations

from slimmer.coldstart.model import ColdstartReport, ImageColdstart, RunTimes
from slimmer.units import parse_bandwidth

SOURCE_DIGEST = "sha256:" + "ab" * 32
RESULT_DIGEST = "sha256:" + "cd" * 32


def comparison(source: str = "oci:orig:v1", result: str = "oci:slim:v1", *,
               source_digest: str = SOURCE_DIGEST, result_digest: str = RESULT_DIGEST,
               runtime: str = "containerd") -> ColdstartReport:
    """Source and result as ``slim push --coldstart`` measures them, one run each: source
    250 MB compressed, 2 + 8 + 1 = 11 s (13 s at 1 Gbit/s); result 125 MB, 1 + 4 + 1 = 6 s
    (7 s). The proxy has no start: 10 s and 5 s."""
    proxy = runtime == "proxy"
    return ColdstartReport(
        runtime, None if proxy else "1.6.20", "chosen with --runtime proxy" if proxy else None,
        False, 1, parse_bandwidth("1Gbit"), "exit", [], None, None, 300.0,
        [ImageColdstart(source, source_digest, "linux/amd64", 250_000_000, 750_000_000, 51_696,
                        12, [RunTimes(2.0, 8.0, None if proxy else 1.0)], role="source"),
         ImageColdstart(result, result_digest, "linux/amd64", 125_000_000, 375_000_000, 40_405,
                        7, [RunTimes(1.0, 4.0, None if proxy else 1.0)], role="result")])


def did_not_start(name: str = "oci:broken:v1", output: tuple[str, ...] = ("config missing",)
                  ) -> ImageColdstart:
    """An image whose run failed: no runs, the reason and the last lines of its output."""
    return ImageColdstart(name, "sha256:" + "ef" * 32, None, 1_000, 2_000, 3, 1, [],
                          error="exited with status 3", output=list(output))
