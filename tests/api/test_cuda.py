"""--cuda-arch end to end: an image with the real fixture library (and broken, unserved and
hardlinked copies) slimmed for sm_90, checked with cuobjdump, ctypes and the report."""

from __future__ import annotations

import ctypes
import dataclasses
import gzip
import io
import json
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import slimmer
from slimmer import SlimOptions
from slimmer.cli import main
from slimmer.errors import UsageError
from slimmer.options import options_digest
from slimmer.profiles import select_profiles

from support.fatbins import FIXTURE, container, cubin, cuda_elf
from support.layoututil import blob_path, config_doc, put_blob, sha256, tagged, write_layout

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LIB = FIXTURE.read_bytes()
SITE = "usr/lib/python3/site-packages"
BLACKWELL = cuda_elf(container([cubin(100), cubin(120)]), text=b"\x90" * 8192)


def broken_fixture() -> bytes:
    """The fixture with the second entry of its second container claiming too much."""
    data = bytearray(LIB)
    second = data.index(struct.pack("<I", 0xBA55ED50), data.index(b"\x50\xed\x55\xba") + 8)
    first_entry = second + 16
    entry_size = struct.unpack_from("<IQ", data, first_entry + 4)
    struct.pack_into("<Q", data, first_entry + sum(entry_size) + 8, 1 << 40)
    return bytes(data)


def layer(files: list[tuple[str, bytes | str]]) -> bytes:
    """A gzip tar layer; a str value makes a hardlink to that path."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1_600_000_000, 0o755
            if isinstance(content, str):
                info.type, info.linkname = tarfile.LNKTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def write_image(path: Path, tars: list[bytes]) -> None:
    """An OCI layout at ``path`` with one image of the gzip-compressed ``tars``, tagged v1."""
    layers = [{"mediaType": OCI_LAYER, **put_blob(path, gzip.compress(t, mtime=0))} for t in tars]
    config = json.dumps(config_doc([sha256(t) for t in tars])).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      **put_blob(path, config)},
                           "layers": layers}).encode()
    write_layout(path, [tagged({"mediaType": MANIFEST, **put_blob(path, manifest)}, "v1")])


def make_layout(path: Path) -> None:
    tars = [layer([("usr/lib/libbase.so", LIB)]),
            layer([("opt/app/libfixture.so", LIB), ("opt/app/libfixture.so.1",
                                                    "opt/app/libfixture.so"),
                   ("opt/app/libbroken.so", broken_fixture()),
                   ("opt/app/libblackwell.so", BLACKWELL),
                   (f"{SITE}/pkg/libpkg.so", LIB),
                   (f"{SITE}/pkg-1.0.dist-info/RECORD", b"pkg/libpkg.so,sha256=x,56256\n")])]
    write_image(path, tars)


def files_of(layout: Path) -> dict[str, bytes | str]:
    """Every file of every output layer (later layers win); hardlinks as their target name."""
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob_path(layout, index["manifests"][0]["digest"]).read_bytes())
    out: dict[str, bytes | str] = {}
    for desc in manifest["layers"]:
        data = gzip.decompress(blob_path(layout, desc["digest"]).read_bytes())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                if m.islnk():
                    out[m.name] = m.linkname
                elif m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    out[m.name] = f.read()
    return out


def cuobjdump() -> str:
    exe = Path(sys.executable).parent.parent / "lib" / f"python{sys.version_info.major}." \
        f"{sys.version_info.minor}" / "site-packages" / "nvidia" / "cu13" / "bin" / "cuobjdump"
    found = str(exe) if exe.exists() else shutil.which("cuobjdump")
    assert found, "cuobjdump comes with the nvidia-cuda-cuobjdump test dependency"
    return found


def listing(path: Path, what: str) -> list[str]:
    proc = subprocess.run([cuobjdump(), f"--list-{what}", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return [line.rsplit(".", 2)[-2] for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def slimmed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("cuda")
    make_layout(root / "src")
    report = slimmer.slim(f"oci:{root / 'src'}:v1", f"oci:{root / 'out'}:v1",
                          SlimOptions(profiles=("none",), cuda_arch=("sm_90",),
                                      compression="gzip"))
    return root, report


def test_pruned_libraries_hold_only_the_code_for_the_gpu(slimmed: tuple[Path, Any]) -> None:
    root, _ = slimmed
    files = files_of(root / "out")
    for name in ("opt/app/libfixture.so", "usr/lib/libbase.so", f"{SITE}/pkg/libpkg.so"):
        data = files[name]
        assert isinstance(data, bytes) and len(data) == len(LIB) and data != LIB
        lib = root / name.replace("/", "_")
        lib.write_bytes(data)
        lib.chmod(0o755)
        assert listing(lib, "elf") == ["sm_90a", "sm_90"]   # container 1: sm_90a; 2: sm_90
        assert listing(lib, "ptx") == ["sm_80"]             # compute_120 PTX is no use on 9.0
        assert ctypes.CDLL(str(lib)).fixture_answer() == \
            ctypes.CDLL(str(FIXTURE)).fixture_answer() == 42
    assert listing(FIXTURE, "elf") == ["sm_75", "sm_80", "sm_86", "sm_90", "sm_90a", "sm_100",
                                       "sm_80", "sm_90", "sm_100", "sm_100a", "sm_120"]
    assert files["opt/app/libfixture.so.1"] == "opt/app/libfixture.so"   # hardlink intact


def test_unusable_and_malformed_libraries_stay_byte_identical(slimmed: tuple[Path, Any]
                                                             ) -> None:
    root, report = slimmed
    files = files_of(root / "out")
    assert files["opt/app/libbroken.so"] == broken_fixture()
    assert files["opt/app/libblackwell.so"] == BLACKWELL
    warnings = "\n".join(report.warnings)
    assert "/opt/app/libbroken.so left unchanged (malformed)" in warnings
    assert "/opt/app/libblackwell.so left unchanged (no code): no cubin or usable PTX for " \
           "sm_90 in any of its 1 containers" in warnings
    assert "1 pruned files belong to installed Python distributions" in warnings


def test_report_lists_every_cuda_library(slimmed: tuple[Path, Any]) -> None:
    _, report = slimmed
    image = report.images[0]
    rows = {c["path"]: c for c in image.cuda}
    assert sorted(rows) == ["opt/app/libblackwell.so", "opt/app/libbroken.so",
                            "opt/app/libfixture.so", "usr/lib/libbase.so",
                            f"{SITE}/pkg/libpkg.so"]
    fixture = rows["opt/app/libfixture.so"]
    assert fixture["status"] == "pruned" and fixture["kept"] == ["compute_80", "sm_90", "sm_90a"]
    assert fixture["code_before"] == 42184 > fixture["code_after"]
    assert "sm_120" in fixture["dropped"] and fixture["size"] == len(LIB)
    total = image.cuda_summary
    assert total is not None
    assert (total["gpus"], total["pruned"], total["flagged"], total["libraries"]) == \
        (["sm_90"], 3, 2, 5)
    doc = report.to_dict()
    assert doc["images"][0]["cuda_summary"]["code_after"] == total["code_after"]
    assert type(report).from_dict(json.loads(json.dumps(doc))).images[0].cuda == image.cuda
    assert "GPU code for sm_90: 3 of 5 CUDA libraries pruned" in report.render_text()


def test_analyze_shows_the_saving_and_writes_nothing(tmp_path: Path,
                                                     slimmed: tuple[Path, Any]) -> None:
    root, pushed = slimmed
    report = slimmer.analyze(f"oci:{root / 'src'}:v1",
                             SlimOptions(profiles=("none",), cuda_arch=("h100",)))
    assert report.images[0].cuda == pushed.images[0].cuda
    assert report.images[0].layers[0].tar_after == pushed.images[0].layers[0].tar_after


def test_keep_base_leaves_the_base_layer_as_it_is(tmp_path: Path) -> None:
    make_layout(tmp_path / "src")
    report = slimmer.slim(f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'out'}:v1",
                          SlimOptions(profiles=("none",), cuda_arch=("sm_90",), base=1,
                                      keep_base=True, compression="keep"))
    src = json.loads((tmp_path / "src" / "index.json").read_text())["manifests"][0]["digest"]
    first = json.loads(blob_path(tmp_path / "src", src).read_bytes())["layers"][0]["digest"]
    assert report.images[0].layers[0].mode == "passthrough"
    assert report.images[0].layers[0].inputs[0]["digest"] == first
    rows = {c["path"]: c for c in report.images[0].cuda}
    assert rows["usr/lib/libbase.so"]["status"] == "kept layer"
    assert rows["opt/app/libfixture.so"]["status"] == "pruned"


def test_output_is_deterministic(tmp_path: Path, slimmed: tuple[Path, Any]) -> None:
    root, first = slimmed
    again = slimmer.slim(f"oci:{root / 'src'}:v1", f"oci:{tmp_path / 'out'}:v1",
                         SlimOptions(profiles=("none",), cuda_arch=("h100", "sm_90"),
                                     compression="gzip"))
    assert again.digest == first.digest


def test_options_digest() -> None:
    profiles = select_profiles([], [])
    plain = SlimOptions()
    assert options_digest(plain, profiles) == options_digest(
        dataclasses.replace(plain, cuda_arch=()), profiles)
    h100 = options_digest(SlimOptions(cuda_arch=("h100",)), profiles)
    assert h100 == options_digest(SlimOptions(cuda_arch=("sm_90,sm_90a",)), profiles)
    assert h100 != options_digest(plain, profiles)
    assert h100 != options_digest(SlimOptions(cuda_arch=("h100",), no_ptx=True), profiles)


def test_bad_arch_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="known: sm_50"):
        SlimOptions(cuda_arch=("sm_91",)).check()
    with pytest.raises(UsageError, match="--no-ptx needs --cuda-arch"):
        SlimOptions(no_ptx=True).check()
    make_layout(tmp_path / "src")
    result = CliRunner().invoke(main, ["push", f"oci:{tmp_path / 'src'}:v1",
                                       f"oci:{tmp_path / 'out'}:v1", "--cuda-arch", "h1000"])
    assert result.exit_code == 2
    assert "unknown GPU architecture 'h1000'" in result.output and "h100" in result.output
    assert not (tmp_path / "out").exists()


def test_no_ptx(tmp_path: Path) -> None:
    make_layout(tmp_path / "src")
    result = CliRunner().invoke(main, ["analyze", f"oci:{tmp_path / 'src'}:v1", "--profile",
                                       "none", "--cuda-arch", "a100", "--no-ptx", "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output[:result.output.rindex("}") + 1])
    rows = {c["path"]: c for c in doc["images"][0]["cuda"]}
    assert rows["opt/app/libfixture.so"]["kept"] == ["sm_80"]
    assert doc["images"][0]["cuda_summary"]["ptx"] is False


def test_hardlink_data_moved_or_fetched_is_pruned_too(tmp_path: Path) -> None:
    """A stripped file whose hardlink survives: its data is written under the link's name
    (RENAME in the same layer, FETCH from a lower one), pruned like the file itself."""
    tars = [layer([("lib/a.so", LIB)]),
            layer([("lib/b.so", LIB), ("lib/b.so.1", "lib/b.so"), ("lib/a.so.1", "lib/a.so")])]
    src = tmp_path / "src"
    write_image(src, tars)
    report = slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:v1",
                          SlimOptions(profiles=("none",), strip=("/lib/a.so", "/lib/b.so"),
                                      merge="none", cuda_arch=("sm_90",), compression="gzip"))
    files = files_of(tmp_path / "out")
    assert "lib/a.so" not in files and "lib/b.so" not in files
    for name in ("lib/a.so.1", "lib/b.so.1"):
        data = files[name]
        assert isinstance(data, bytes) and data != LIB and len(data) == len(LIB)
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        assert listing(path, "elf") == ["sm_90a", "sm_90"]
    assert {c["status"] for c in report.images[0].cuda} == {"pruned"}
