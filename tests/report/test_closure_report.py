"""The closure in the report: override chains, forced removals and --why answers survive the
JSON round trip, and the text report shows the chains."""

from __future__ import annotations

import json

import slimmer
from slimmer.report.model import Report

from support import REPO

EXAMPLE = f"oci:{REPO / 'testdata' / 'example'}:latest"


def test_chains_forced_and_why_round_trip() -> None:
    report = slimmer.analyze(EXAMPLE, slimmer.SlimOptions(
        strip=("/usr/local/**",), no_protect=("/usr/local/lib/**",)),
        why=["/usr/local/bin/python3", "/usr/local/lib/python3.11/os.py"])
    img = report.images[0]
    over = {o["path"]: o for o in img.overrides}
    assert over["usr/local/bin/python3"]["chain"] == [
        "usr/local/bin/python3", "app/main.py (shebang)", "Entrypoint"]
    assert over["usr/local/bin/python3"]["reason"] == \
        "needed: usr/local/bin/python3 <- app/main.py (shebang) <- Entrypoint"
    assert [f["path"] for f in img.forced] == ["usr/local/lib/python3.11/os.py"]
    assert img.why["/usr/local/lib/python3.11/os.py"]["verdict"] == "removed"
    assert img.why["/usr/local/lib/python3.11/os.py"]["forced_by"] == "/usr/local/lib/**"
    back = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back.images[0].why == img.why and back.images[0].forced == img.forced
    assert back.images[0].overrides == img.overrides
    text = report.render_text()
    assert ("kept /usr/local/bin/python3: rule user.strip.1 overridden (needed: "
            "usr/local/bin/python3 <- app/main.py (shebang) <- Entrypoint)") in text
    assert "warning: --no-protect /usr/local/lib/**: removing /usr/local/lib/python3.11/os.py" \
        in text
