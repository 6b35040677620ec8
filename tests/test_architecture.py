"""The package layout's contracts: imports follow the data flow (import-linter), light modules
stay light at run time, and the options digest written into every manifest stays the same."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimmer.options import (
    DIGESTED_FIELDS,
    OUTPUT_FORMAT,
    RULE_FIELDS,
    UNDIGESTED_FIELDS,
    SlimOptions,
    options_digest,
)
from slimmer.profiles import select_profiles

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    """import-linter checks the layers (cli > hook > api > trust > report > transports|build >
    plan > profiles > fs > codec > options > oci > leaves) and the forbidden imports."""
    proc = subprocess.run([_tool("lint-imports"), "--config", str(ROOT / "pyproject.toml")],
                          cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                          "print('\\n'.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


HEAVY = {"isal", "backports.zstd", "compression.zstd", "httpx", "huey", "cryptography"}


@pytest.mark.parametrize("code", [
    "import slimmer",
    "import slimmer.plan.image",
    "import slimmer.profiles",
    "import slimmer.report.summary",
    "import slimmer.coldstart",
])
def test_light_imports_stay_light(code: str) -> None:
    loaded = _loaded_after(code)
    assert not HEAVY & loaded, f"{code} loads {sorted(HEAVY & loaded)}"


def test_the_hook_front_loads_no_worker_no_pipeline_no_httpx() -> None:
    """What ``slim serve --workers 0`` imports: the CLI, the server, the queue and the store."""
    loaded = _loaded_after("import slimmer.cli, slimmer.hook.server, slimmer.hook.queue")
    for name in ("httpx", "isal", "slimmer.hook.worker", "slimmer.build.layer", "slimmer.api"):
        assert name not in loaded


# -- the options digest ----------------------------------------------------------------------

def test_every_option_is_classified_for_the_digest() -> None:
    """A new SlimOptions field fails here until it is put in DIGESTED_FIELDS (it changes the
    output bytes), RULE_FIELDS or UNDIGESTED_FIELDS (it does not)."""
    fields = [f.name for f in dataclasses.fields(SlimOptions)]
    classified = [*DIGESTED_FIELDS, *RULE_FIELDS, *UNDIGESTED_FIELDS]
    assert sorted(fields) == sorted(classified)
    assert len(classified) == len(set(classified))


def test_options_digest_is_pinned() -> None:
    """The document behind io.slimmer.options.digest is in every manifest slimmer wrote. Its
    shape is pinned by the digests the first round's code computed (format 1) and those of
    format 2; the current format's digests are pinned too, so a change of either is
    deliberate. Format 3 (the static closure keeps what the image needs although rules match
    it) added ``no_protect``, which enters the document only when set, so the older documents
    are unchanged."""
    every = SlimOptions(
        profiles=("compilers,docs",), strip=("/x/**", "*.a"), keep=("/usr/share/zoneinfo/**",),
        platforms=("linux/arm64", "linux/amd64"), merge="all", merge_threshold=1234, base=2,
        keep_base=True, compression="gzip", level=1, jobs=3)
    chosen = select_profiles(list(every.profiles), [])
    default = select_profiles([], [])
    assert options_digest(SlimOptions(), default, output_format=1) == \
        "sha256:c27e189c05492ee0239f18b5b0e4a45896d6d54a48f4099c39e146909f8d4b95"
    assert options_digest(every, chosen, output_format=1) == \
        "sha256:9d909010f51d57813ba488321d6e5444689ceab4df049555bc8298badd62ec29"
    assert options_digest(SlimOptions(), default, output_format=2) == \
        "sha256:bf253ff08f091b8f49b37b4d592ebce119de2ec2c0a1b81766644443bcaed96d"
    assert options_digest(every, chosen, output_format=2) == \
        "sha256:7af4d1c88d423990d0dde1947c52c03754c9f80790bf7bfcef0da6ff569e48e6"
    assert options_digest(SlimOptions(), default, output_format=3) == \
        "sha256:40da9210f274d4733822ccf2c8cca22c2d119360544245be31fc8f9b25edb2b0"
    assert options_digest(every, chosen, output_format=3) == \
        "sha256:792b514204d6d0ed68a704a3041fc4599da35bab24f08a50654f32191ebf5a2b"
    assert options_digest(SlimOptions(), default, output_format=4) == \
        "sha256:9ea2caff3a968a9ce1b2a2f6bd5cb8b0bb663b932e869deb710530d520c3a297"
    assert options_digest(every, chosen, output_format=4) == \
        "sha256:ab4a06930783de7ff75f781e447359993ad1b0c8b2ae961cbf422457dd5fe9cc"
    assert OUTPUT_FORMAT == 5
    assert options_digest(SlimOptions(), default) == \
        "sha256:4cee7b44c2c26ef0fa4fee5a1d4eac1bd6325ddf3467bfa37c4042b82551c568"
    assert options_digest(every, chosen) == \
        "sha256:3e94af8dd596ed72c554482d760f2e4a512043fb4a1d74de86ce868462f7acc5"
    forced = dataclasses.replace(every, no_protect=("/usr/lib/x86_64-linux-gnu/libz*",))
    assert options_digest(forced, chosen) == \
        "sha256:30fa40ccd5df3a754dab7aadab99af9d58e3ab57c3fbd6619e7cdf6ee7f2b00e"
    # jobs does not change the bytes, so it does not change the digest
    assert options_digest(dataclasses.replace(every, jobs=None), chosen) == \
        options_digest(every, chosen)


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    assert exe is not None, f"{name} is installed by scripts/setup --test"
    return exe


def test_types_check() -> None:
    """mypy over the package: public code is annotated and the annotations agree."""
    proc = subprocess.run([_tool("mypy"), "slimmer", "--ignore-missing-imports"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint() -> None:
    """ruff (pyflakes and import order, as configured in pyproject.toml)."""
    proc = subprocess.run([_tool("ruff"), "check", "slimmer", "tests", "scripts/compare-output"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_merge_conflict_markers() -> None:
    """No tracked text file keeps the markers of an unresolved merge."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    marker = re.compile(rb"^(<{7} |>{7} |={7}$)", re.MULTILINE)
    bad = []
    for name in filter(None, files):
        path = ROOT / name
        if path.suffix in (".gz", ".tar", ".so", ".png", ".zst") or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:8192] and marker.search(data):
            bad.append(name)
    assert bad == []
