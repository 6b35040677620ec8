"""A small fake ML image built with umoci (CUDA 12 and 13 wheel layouts, torch headers, Triton
with NVIDIA and AMD back ends, the same library in two venvs): the ML profiles and --dedupe
remove what they say, keep every runtime library byte for byte, and umoci extracts the result
to the original tree minus exactly those paths, with the duplicates as one inode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import slimmer
from slimmer.cli import main
from slimmer.options import SlimOptions

from support.imagetools import (
    HARDLINKS,
    build_image,
    missing_tools,
    snapshot,
    unpack_tree,
    write_file,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(missing_tools("umoci", "skopeo") is not None,
                                 reason=str(missing_tools("umoci", "skopeo")))]

SP = "opt/venv/lib/python3.11/site-packages"
SP2 = "opt/tools/lib/python3.11/site-packages"
KiB = 1024
ML_PROFILES = "cuda-devel,python-headers,triton-compile,foreign-backends"


def blob(label: str, size: int) -> bytes:
    """ELF-looking, incompressible-enough bytes, different per label."""
    out = bytearray(b"\x7fELF\x02\x01\x01\x00")
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


RUNTIME = [f"{SP}/nvidia/cu13/lib/libcudart.so.13", f"{SP}/nvidia/cu13/lib/libcublas.so.13",
           f"{SP}/nvidia/cu13/lib/libcublasLt.so.13", f"{SP}/nvidia/cu13/lib/libnvrtc.so.13",
           f"{SP}/nvidia/cu13/lib/libnvrtc-builtins.so.13.0",
           f"{SP}/nvidia/cu13/lib/libnvJitLink.so.13", f"{SP}/nvidia/cudnn/lib/libcudnn.so.9",
           f"{SP}/nvidia/nccl/lib/libnccl.so.2", f"{SP}/nvidia/cu13/lib/libcufft.so.12",
           f"{SP2}/nvidia/cuda_runtime/lib/libcudart.so.12"]
EXPECTED_GONE = {
    "cuda-devel": [f"{SP}/nvidia/cu13/bin", f"{SP}/nvidia/cu13/bin/nvcc",
                   f"{SP}/nvidia/cu13/bin/ptxas", f"{SP}/nvidia/cu13/nvvm",
                   f"{SP}/nvidia/cu13/nvvm/bin", f"{SP}/nvidia/cu13/nvvm/bin/cicc",
                   f"{SP}/nvidia/cu13/include", f"{SP}/nvidia/cu13/include/cuda.h",
                   f"{SP}/nvidia/cu13/lib/libcudart_static.a", f"{SP2}/nvidia/cuda_nvcc",
                   f"{SP2}/nvidia/cuda_nvcc/bin", f"{SP2}/nvidia/cuda_nvcc/bin/nvcc",
                   f"{SP2}/nvidia/cuda_runtime/include",
                   f"{SP2}/nvidia/cuda_runtime/include/cuda_runtime.h"],
    "python-headers": [f"{SP}/torch/include", f"{SP}/torch/include/ATen",
                       f"{SP}/torch/include/ATen/ATen.h"],
    "triton-compile": [f"{SP}/triton/backends/nvidia/bin",
                       f"{SP}/triton/backends/nvidia/bin/ptxas",
                       f"{SP}/triton/backends/nvidia/include",
                       f"{SP}/triton/backends/nvidia/include/cuda.h"],
    "foreign-backends": [f"{SP}/triton/backends/amd", f"{SP}/triton/backends/amd/compiler.py",
                         f"{SP}/triton/backends/amd/lib", f"{SP}/triton/backends/amd/lib/ockl.bc"],
}
CUPTI = blob("cupti", 300 * KiB)
TORCH_CUDA = blob("libtorch_cuda", 200 * KiB)


def base(root: Path) -> None:
    write_file(root / "etc/os-release", "ID=debian\n")
    write_file(root / "usr/bin/python3.11", blob("python", 20 * KiB), mode=0o755)
    write_file(root / "opt/shared/libtorch_cuda.so", TORCH_CUDA, mode=0o755)


def wheels(root: Path) -> None:
    for path in RUNTIME:
        write_file(root / path, blob(path, 40 * KiB), mode=0o755)
    for path in ("nvidia/cu13/bin/nvcc", "nvidia/cu13/bin/ptxas", "nvidia/cu13/nvvm/bin/cicc"):
        write_file(root / SP / path, blob(path, 60 * KiB), mode=0o755)
    write_file(root / SP / "nvidia/cu13/include/cuda.h", "#define CUDA_VERSION 13000\n")
    write_file(root / SP / "nvidia/cu13/lib/libcudart_static.a", blob("static", 30 * KiB))
    write_file(root / SP2 / "nvidia/cuda_nvcc/bin/nvcc", blob("nvcc12", 60 * KiB), mode=0o755)
    write_file(root / SP2 / "nvidia/cuda_runtime/include/cuda_runtime.h", "// cuda 12\n")
    write_file(root / SP / "nvidia/__init__.py", "")
    write_file(root / SP / "torch/__init__.py", "import torch._C\n")
    write_file(root / SP / "torch/include/ATen/ATen.h", "#pragma once\n")
    write_file(root / SP / "torch/lib/libtorch_cuda.so", TORCH_CUDA, mode=0o755)
    write_file(root / SP2 / "torch/lib/libtorch_cuda.so", TORCH_CUDA, mode=0o755)
    write_file(root / SP / "triton/__init__.py", "")
    write_file(root / SP / "triton/backends/nvidia/driver.py", "# driver\n")
    write_file(root / SP / "triton/backends/nvidia/bin/ptxas", blob("tptxas", 50 * KiB),
               mode=0o755)
    write_file(root / SP / "triton/backends/nvidia/include/cuda.h", "// triton's cuda.h\n")
    for name in ("libcupti.so", "libcupti.so.12", "libcupti.so.2025.1.1"):  # a wheel: copies
        write_file(root / SP / "triton/backends/nvidia/lib/cupti" / name, CUPTI, mode=0o755)
    write_file(root / SP / "triton/backends/amd/compiler.py", "# hip\n")
    write_file(root / SP / "triton/backends/amd/lib/ockl.bc", blob("ockl", 10 * KiB))


def app(root: Path) -> None:
    write_file(root / "app/infer.py", "import torch\n")


@pytest.fixture(scope="module")
def ml_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("ml") / "layout"
    build_image(layout, "v1", [base, wheels, app],
                config={"Cmd": ["/usr/bin/python3.11", "/app/infer.py"]})
    return layout


def test_ml_profiles_and_dedupe_keep_the_rest_of_the_tree(ml_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = slimmer.slim(f"oci:{ml_image}:v1", f"oci:{out}:v1", SlimOptions(
        profiles=(ML_PROFILES,), dedupe=True, dedupe_min_size=64 * KiB, base=1))
    img = report.images[0]
    by_profile = img.removed_by_profile
    assert set(by_profile) == set(EXPECTED_GONE)
    gone = {p for paths in EXPECTED_GONE.values() for p in paths}
    before = snapshot(unpack_tree(ml_image, "v1", tmp_path / "a"))
    after = snapshot(unpack_tree(out, "v1", tmp_path / "b"))
    assert {p for p in before if p != HARDLINKS} - {p for p in after if p != HARDLINKS} == gone
    for path, entry in after.items():
        if path != HARDLINKS:
            assert entry == before[path], path      # everything else byte for byte
    for path in RUNTIME:
        assert after[path].sha256 == hashlib.sha256(blob(path, 40 * KiB)).hexdigest(), path
    cupti = f"{SP}/triton/backends/nvidia/lib/cupti"
    torch_libs = (f"{SP}/torch/lib/libtorch_cuda.so", f"{SP2}/torch/lib/libtorch_cuda.so")
    assert set(after[HARDLINKS]) == {
        (f"{cupti}/libcupti.so", f"{cupti}/libcupti.so.12", f"{cupti}/libcupti.so.2025.1.1"),
        tuple(sorted(torch_libs))}
    assert img.dedupe is not None
    assert img.dedupe["files"] == 3 and img.dedupe["bytes"] == 2 * len(CUPTI) + len(TORCH_CUDA)
    # the base layer's copy of libtorch_cuda.so stays where it is: reported, not linked
    assert img.dedupe["cross_layer_bytes"] == len(TORCH_CUDA)
    (cross,) = img.dedupe["cross_layer"]
    assert cross["paths"][0] == "opt/shared/libtorch_cuda.so" and len(set(cross["layers"])) == 2
    assert img.layers[0].mode == "recompress"             # nothing changed in the base layer
    text = report.render_text()
    assert "deduplicated: 3 files" in text and "identical files left in different layers" in text


def test_analyze_names_the_ml_profiles_and_their_savings(ml_image: Path) -> None:
    report = slimmer.analyze(f"oci:{ml_image}:v1", SlimOptions(profiles=("cuda-devel",)))
    ml = report.images[0].ml
    assert ml is not None and ml["stacks"] == ["torch", "cuda"]
    assert set(ml["profiles"]) == set(EXPECTED_GONE)
    assert ml["profiles"]["cuda-devel"]["chosen"]
    assert ml["profiles"]["cuda-devel"]["bytes"] == report.images[0].removed_by_profile[
        "cuda-devel"]["bytes"] > 0
    for name in ("python-headers", "triton-compile", "foreign-backends"):
        entry = ml["profiles"][name]
        assert not entry["chosen"] and entry["bytes"] > 0 and entry["warning"]
        assert entry["bytes"] == report.images[0].other_profiles[name]
    text = report.render_text()
    assert "ML image (torch, cuda)" in text
    assert "triton-compile" in text and "would remove" in text


def test_analyze_of_a_plain_image_has_no_ml_section(tmp_path: Path) -> None:
    layout = tmp_path / "plain"
    build_image(layout, "v1", [base])
    report = slimmer.analyze(f"oci:{layout}:v1")
    assert report.images[0].ml is None and "ML image" not in report.render_text()


def test_cli_dedupe_flags_and_json(ml_image: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["push", f"oci:{ml_image}:v1", f"oci:{tmp_path}/o:v1",
                                  "--profile", "none", "--dedupe", "--dedupe-min", "64KiB",
                                  "--base", "1", "--json", "-"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    dedupe = doc["images"][0]["dedupe"]
    assert dedupe["files"] == 3 and len(dedupe["groups"]) == 2
    assert {len(g["paths"]) for g in dedupe["groups"]} == {2, 3}
    assert sum(ly["deduped_files"] for ly in doc["images"][0]["layers"]) == 3
    r = CliRunner().invoke(main, ["push", f"oci:{ml_image}:v1", f"oci:{tmp_path}/p:v1",
                                  "--dedupe-min", "0"])
    assert r.exit_code == 2 and "--dedupe-min must be at least 1 byte" in r.output
    r = CliRunner().invoke(main, ["analyze", f"oci:{ml_image}:v1"])
    assert r.exit_code == 0 and "ML image (torch, cuda)" in r.output


def test_dedupe_leaves_files_that_cuda_arch_rewrites_alone(tmp_path: Path) -> None:
    """Twins whose content --cuda-arch rewrites stay two files (the hash is of the input);
    other twins of the same layer are still linked."""
    import gzip
    import io
    import tarfile

    from support.fatbins import FIXTURE
    from support.layoututil import blob_path, make_image, tagged, write_layout
    lib, data = FIXTURE.read_bytes(), blob("data", 64 * KiB)
    src = tmp_path / "src"
    desc = make_image(src, [{"opt/a/libfixture.so": lib, "opt/b/libfixture.so": lib,
                             "opt/a/data.bin": data, "opt/b/data.bin": data}])
    write_layout(src, [tagged(desc, "v1")])
    report = slimmer.slim(f"oci:{src}:v1", f"oci:{tmp_path / 'out'}:v1", SlimOptions(
        profiles=("none",), cuda_arch=("sm_90",), dedupe=True, dedupe_min_size=KiB,
        compression="gzip"))
    img = report.images[0]
    assert img.cuda_summary is not None and img.cuda_summary["pruned"] == 2
    assert img.dedupe is not None
    assert [g["paths"] for g in img.dedupe["groups"]] == [["opt/a/data.bin", "opt/b/data.bin"]]
    out = tmp_path / "out"
    manifest = json.loads(blob_path(out, img.digest or "").read_bytes())
    (layer,) = manifest["layers"]
    tar = gzip.decompress(blob_path(out, layer["digest"]).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        rewritten = [tf.extractfile(members[f"opt/{d}/libfixture.so"]).read()  # type: ignore
                     for d in "ab"]
    assert members["opt/b/data.bin"].islnk() and members["opt/a/data.bin"].isfile()
    assert members["opt/a/libfixture.so"].isfile() and members["opt/b/libfixture.so"].isfile()
    assert rewritten[0] == rewritten[1] != lib
