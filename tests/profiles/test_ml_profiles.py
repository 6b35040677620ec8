"""The profiles for AI/ML images (cuda-devel, python-headers, triton-compile, foreign-backends)
against the paths real CUDA 12 wheels, CUDA 13 wheels, CUDA toolkits and Triton install;
conditional rules (if_image_has / unless_image_has) and ML image detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimmer.errors import ProfileError
from slimmer.options import SlimOptions, options_digest
from slimmer.profiles import (
    Matcher,
    Profile,
    Rule,
    builtin_profiles,
    detect_ml,
    load_profile_file,
    render_profile,
    select_profiles,
)

SP = "/opt/venv/lib/python3.11/site-packages"
DP = "/usr/lib/python3/dist-packages"
ML = ["cuda-devel", "python-headers", "triton-compile", "foreign-backends"]


def stripped_by(m: Matcher, path: str, kind: str = "file") -> str | None:
    found = m.match(path, kind)
    return found.rule.id if found is not None and found.kept_by is None else None


CASES: dict[str, list[tuple[str, str, str | None]]] = {
    "cuda-devel": [
        # CUDA 12 wheels: one package per component
        (f"{SP}/nvidia/cuda_nvcc/bin/nvcc", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cuda_nvcc/bin/ptxas", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cuda_nvcc/nvvm/bin/cicc", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cuda_nvcc/include/crt/host_config.h", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cuda_nvcc", "dir", "cuda-devel.compiler"),
        (f"{DP}/nvidia/cuda_nvcc/bin/nvcc", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cuda_cuobjdump/bin/cuobjdump", "file", "cuda-devel.tools"),
        (f"{SP}/nvidia/cuda_nvdisasm/bin/nvdisasm", "file", "cuda-devel.tools"),
        (f"{SP}/nvidia/cuda_sanitizer_api/compute-sanitizer/compute-sanitizer", "file",
         "cuda-devel.tools"),
        (f"{SP}/nvidia/cuda_runtime/include/cuda_runtime.h", "file", "cuda-devel.headers"),
        (f"{SP}/nvidia/cudnn/include/cudnn.h", "file", "cuda-devel.headers"),
        (f"{SP}/nvidia/nccl/include/nccl.h", "file", "cuda-devel.headers"),
        (f"{SP}/nvidia/cuda_runtime/lib/libcudart_static.a", "file", "cuda-devel.static-libs"),
        (f"{SP}/nvidia/cuda_runtime/lib/libcudart.so.12", "file", None),
        (f"{SP}/nvidia/cublas/lib/libcublasLt.so.12", "file", None),
        (f"{SP}/nvidia/cufft/lib/libcufft.so.11", "file", None),
        (f"{SP}/nvidia/cuda_cupti/lib/libcupti.so.12", "file", None),
        (f"{SP}/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.4", "file", None),
        (f"{SP}/nvidia/__init__.py", "file", None),
        (f"{SP}/nvidia/cuda_runtime/__init__.py", "file", None),
        # CUDA 13 wheels: one shared tree, nvidia/cu13/{bin,nvvm,include,lib}
        (f"{SP}/nvidia/cu13/bin/nvcc", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/bin/ptxas", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/bin/cuobjdump", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/bin/crt/link.stub", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/bin", "dir", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/nvvm/bin/cicc", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/lib/libnvvm.so.4", "file", "cuda-devel.compiler"),
        (f"{SP}/nvidia/cu13/include/cuda.h", "file", "cuda-devel.headers"),
        (f"{SP}/nvidia/cu13/include", "dir", "cuda-devel.headers"),
        (f"{SP}/nvidia/cu13/lib/libcudadevrt.a", "file", "cuda-devel.static-libs"),
        (f"{SP}/nvidia/cu13/lib/libcudart.so.13", "file", None),
        (f"{SP}/nvidia/cu13/lib/libcufft.so.12", "file", None),
        (f"{SP}/nvidia/cu13/lib/libcupti.so.13", "file", None),
        (f"{SP}/nvidia/cu13/lib/libnvrtc.alt.so.13", "file", None),
        (f"{SP}/nvidia/cu13/lib", "dir", None),
        (f"{SP}/nvidia/cu13", "dir", None),
        (f"{SP}/nvidia/cudnn/lib/libcudnn_engines_runtime_compiled.so.9", "file", None),
        # toolkits
        ("/usr/local/cuda-12.4/bin/nvcc", "file", "cuda-devel.compiler"),
        ("/usr/local/cuda-12.4/bin/nvprune", "file", "cuda-devel.compiler"),
        ("/usr/local/cuda-12.4/nvvm/lib64/libnvvm.so.4.0.0", "file", "cuda-devel.compiler"),
        ("/usr/local/cuda-12.4/compute-sanitizer/compute-sanitizer", "file", "cuda-devel.tools"),
        ("/usr/local/cuda-12.4/nsight-compute-2024.1.0/ncu", "file", "cuda-devel.tools"),
        ("/opt/nvidia/nsight-systems/2024.2.1/bin/nsys", "file", "cuda-devel.tools"),
        ("/usr/local/cuda-12.4/extras/demo_suite/deviceQuery", "file", "cuda-devel.tools"),
        ("/usr/local/cuda-12.4/samples/1_Utilities/deviceQuery/Makefile", "file",
         "cuda-devel.tools"),
        ("/usr/local/cuda-12.4/doc/pdf/CUDA_C_Programming_Guide.pdf", "file", "cuda-devel.tools"),
        ("/usr/local/cuda-12.4/targets/x86_64-linux/include/cuda_runtime.h", "file",
         "cuda-devel.headers"),
        ("/usr/local/cuda-12.4/targets/x86_64-linux/lib/libcublas_static.a", "file",
         "cuda-devel.static-libs"),
        ("/usr/local/cuda-12.4/targets/x86_64-linux/lib/stubs/libcuda.so", "file",
         "cuda-devel.link-stubs"),
        ("/usr/local/cuda-12.4/targets/x86_64-linux/lib/libcudart.so.12.4.127", "file", None),
        ("/usr/local/cuda-12.4/targets/x86_64-linux/lib/libcusparse.so.12", "file", None),
        ("/usr/local/cuda-12.4/lib64", "symlink", None),
        ("/usr/local/cuda", "symlink", None),
        ("/usr/local/cuda-12.4/EULA.txt", "file", None),
        ("/usr/bin/nvcc", "file", "cuda-devel.compiler"),
        ("/usr/lib/nvidia-cuda-toolkit/bin/cicc", "file", "cuda-devel.compiler"),
        # Triton's own copies belong to triton-compile
        (f"{SP}/triton/backends/nvidia/bin/ptxas", "file", None),
        (f"{SP}/triton/backends/nvidia/include/cuda.h", "file", None),
        (f"{SP}/torch/lib/libtorch_cuda.so", "file", None),
    ],
    "python-headers": [
        (f"{SP}/torch/include/ATen/ATen.h", "file", "python-headers.packages"),
        (f"{SP}/torch/include", "dir", "python-headers.packages"),
        (f"{SP}/pybind11/include/pybind11/pybind11.h", "file", "python-headers.packages"),
        (f"{DP}/tensorflow/include/tensorflow/core/framework/tensor.h", "file",
         "python-headers.packages"),
        (f"{SP}/numpy/_core/include/numpy/ndarrayobject.h", "file", "python-headers.numpy"),
        ("/usr/local/lib/python3.11/site-packages/numpy/core/include/numpy/ufuncobject.h",
         "file", "python-headers.numpy"),
        ("/usr/include/python3.11/Python.h", "file", "python-headers.python"),
        ("/usr/local/include/python3.12/Python.h", "file", "python-headers.python"),
        ("/opt/venv/include/site/python3.11/greenlet/greenlet.h", "file",
         "python-headers.python"),
        (f"{SP}/torch/lib/libtorch.so", "file", None),
        (f"{SP}/torch/__init__.py", "file", None),
        (f"{SP}/numpy/_core/multiarray.py", "file", None),
        ("/usr/include/stdio.h", "file", None),
        ("/usr/lib/python3.11/os.py", "file", None),
    ],
    "triton-compile": [
        (f"{SP}/triton/backends/nvidia/bin/ptxas", "file", "triton-compile.tools"),
        (f"{SP}/triton/backends/nvidia/bin/ptxas-blackwell", "file", "triton-compile.tools"),
        (f"{SP}/triton/backends/nvidia/bin/cuobjdump", "file", "triton-compile.tools"),
        (f"{SP}/triton/backends/nvidia/bin/nvdisasm", "file", "triton-compile.tools"),
        (f"{SP}/triton/third_party/cuda/bin/ptxas", "file", "triton-compile.tools"),
        (f"{SP}/triton/backends/nvidia/include/cuda.h", "file", "triton-compile.headers"),
        (f"{SP}/triton/backends/amd/include/hip/hip_runtime.h", "file",
         "triton-compile.headers"),
        (f"{SP}/triton/backends/nvidia/lib/libdevice.10.bc", "file", None),
        (f"{SP}/triton/backends/nvidia/driver.py", "file", None),
        (f"{SP}/triton/_C/libtriton.so", "file", None),
        (f"{SP}/triton/backends/nvidia", "dir", None),
    ],
    # foreign-backends: its rules are conditional, so without an image nothing applies
    "foreign-backends": [
        (f"{SP}/triton/backends/amd/compiler.py", "file", None),
        (f"{SP}/triton/backends/nvidia/compiler.py", "file", None),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ml_profile_paths(name: str) -> None:
    m = Matcher([builtin_profiles()[name]])
    wrong = [(path, kind, expected, stripped_by(m, path, kind))
             for path, kind, expected in CASES[name] if stripped_by(m, path, kind) != expected]
    assert not wrong


def test_ml_profiles_are_opt_in_and_of_category_ml() -> None:
    profiles = builtin_profiles()
    for name in ML:
        p = profiles[name]
        assert not p.default and p.category == "ml" and p.warning
        assert all(r.description for r in p.rules), name
    assert "cpp_extension" in profiles["python-headers"].warning
    assert "torch.compile" in profiles["python-headers"].warning
    assert "torch.compile" in profiles["triton-compile"].warning
    assert "Triton kernel" in profiles["triton-compile"].warning
    assert {p.category for n, p in profiles.items() if n not in ML} == {None}


RUNTIME_LIBRARIES = {
    # family -> a library of it in the CUDA 12 wheels, the CUDA 13 wheels, a toolkit
    "libcudart": ["nvidia/cuda_runtime/lib/libcudart.so.12", "nvidia/cu13/lib/libcudart.so.13",
                  "/usr/local/cuda-12.4/targets/x86_64-linux/lib/libcudart.so.12.4.127"],
    "libcublas": ["nvidia/cublas/lib/libcublasLt.so.12", "nvidia/cu13/lib/libcublas.so.13",
                  "/usr/local/cuda-12.4/lib64/libcublas.so"],
    "libcudnn": ["nvidia/cudnn/lib/libcudnn.so.9", "nvidia/cudnn/lib/libcudnn_graph.so.9",
                 "/usr/lib/x86_64-linux-gnu/libcudnn_ops.so.9.1.0"],
    "libnccl": ["nvidia/nccl/lib/libnccl.so.2", "nvidia/nccl/lib/libnccl.so.2",
                "/usr/lib/x86_64-linux-gnu/libnccl.so.2.21.5"],
    "libnvrtc": ["nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
                 "nvidia/cu13/lib/libnvrtc-builtins.so.13.0",
                 "/usr/local/cuda-12.4/lib64/libnvrtc-builtins.so.12.4"],
    "libnvJitLink": ["nvidia/nvjitlink/lib/libnvJitLink.so.12",
                     "nvidia/cu13/lib/libnvJitLink.so.13",
                     "/usr/local/cuda-12.4/lib64/libnvJitLink.so.12.4.127"],
}


@pytest.mark.parametrize("family", sorted(RUNTIME_LIBRARIES))
def test_cuda_devel_never_strips_runtime_libraries(family: str) -> None:
    """Each runtime library family is kept by cuda-devel's keep rule, in every layout, even
    where a strip rule (a broad --strip, or a directory a rule strips) would take it."""
    profile = builtin_profiles()["cuda-devel"]
    broad = Matcher([profile], strip_globs=["/**"])
    for path in RUNTIME_LIBRARIES[family]:
        path = path if path.startswith("/") else f"{SP}/{path}"
        assert stripped_by(Matcher([profile]), path) is None, path
        found = broad.match(path, "file")
        assert found is not None and found.kept_by is not None, path
        assert found.kept_by.id == "cuda-devel.runtime-libraries", path
        assert broad.match(path, "symlink").kept_by is not None, path  # libcudart.so -> .so.12
    # a library of the family inside a directory cuda-devel strips stays too
    inside = f"{SP}/nvidia/cu13/bin/{family}.so.13"
    assert Matcher([profile]).match(inside, "file").kept_by is not None


def test_cuda_devel_keeps_runtime_libraries_against_other_profiles() -> None:
    m = Matcher(select_profiles(["compilers,cuda-devel"]), strip_globs=[f"{SP}/nvidia/**"])
    assert m.match(f"{SP}/nvidia/cu13/lib/libcudart.so.13", "file").kept_by is not None
    assert stripped_by(m, f"{SP}/nvidia/cu13/lib/libcudart_static.a") == \
        "compilers.static-libs"   # compilers comes first; both would strip it


# --- conditional rules ------------------------------------------------------------------------

NVIDIA_IMAGE = [f"{SP}/nvidia", f"{SP}/nvidia/cu13", f"{SP}/nvidia/cu13/lib/libcudart.so.13",
                f"{SP}/triton/backends/amd", f"{SP}/triton/backends/nvidia"]
ROCM_IMAGE = [f"{SP}/torch/lib/libamdhip64.so", f"{SP}/torch/lib/libtorch_hip.so",
              f"{SP}/triton/backends/amd", f"{SP}/triton/backends/nvidia"]
AMD = f"{SP}/triton/backends/amd/compiler.py"
NV = f"{SP}/triton/backends/nvidia/compiler.py"


def test_foreign_backends_follow_the_image() -> None:
    m = Matcher([builtin_profiles()["foreign-backends"]])
    nvidia = m.for_image(NVIDIA_IMAGE)
    assert stripped_by(nvidia, AMD) == "foreign-backends.triton-amd"
    assert stripped_by(nvidia, f"{SP}/triton/backends/amd", "dir") == \
        "foreign-backends.triton-amd"
    assert stripped_by(nvidia, NV) is None
    rocm = m.for_image(ROCM_IMAGE)
    assert stripped_by(rocm, NV) == "foreign-backends.triton-nvidia"
    assert stripped_by(rocm, AMD) is None
    both = m.for_image(NVIDIA_IMAGE + ["/opt/rocm-6.1/lib/libamdhip64.so.6"])
    assert stripped_by(both, AMD) is None and stripped_by(both, NV) is None
    neither = m.for_image([f"{SP}/triton/backends/amd", f"{SP}/triton/backends/nvidia"])
    assert stripped_by(neither, AMD) is None and stripped_by(neither, NV) is None
    assert m.for_image([]) is m          # nothing enabled: the undecided matcher itself


def test_for_image_without_conditional_rules_is_the_same_matcher() -> None:
    m = Matcher([builtin_profiles()["cuda-devel"]])
    assert m.for_image(NVIDIA_IMAGE) is m


def test_conditional_rule_keep_globs_also_wait_for_the_image() -> None:
    rules = (Rule(id="p.keep", profile="p", description="", strip=(), keep=("/x",),
                  if_image_has=("/marker",)),)
    m = Matcher([Profile("p", "test", rules)], strip_globs=["/x"])
    assert stripped_by(m, "/x") == "user.strip.1"
    assert m.for_image(["/marker"]).match("/x", "file").kept_by is not None


def test_conditions_are_loaded_validated_and_rendered(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "mine"\ndescription = "d"\ncategory = "ml"\n[[rule]]\n'
                    'id = "mine.a"\nstrip = ["/a/**"]\nif_image_has = ["libfoo.so*"]\n'
                    'unless_image_has = ["/opt/bar"]\n')
    (profile,) = load_profile_file(str(path))
    assert profile.category == "ml"
    assert profile.rules[0].if_image_has == ("libfoo.so*",)
    assert profile.rules[0].unless_image_has == ("/opt/bar",)
    text = render_profile(profile)
    assert "only if the image has: libfoo.so*" in text
    assert "not if the image has: /opt/bar" in text and "category: ml" in text
    for bad, message in [('if_image_has = ["a//b"]', "bad glob"),
                         ('unless_image_has = "x"', "must be a list"),
                         ('if_image_has = [1]', "must be a list")]:
        path.write_text(f'name = "mine"\ndescription = "d"\n[[rule]]\nid = "mine.a"\n'
                        f'strip = ["/a"]\n{bad}\n')
        with pytest.raises(ProfileError, match=message):
            load_profile_file(str(path))
    path.write_text('name = "mine"\ndescription = "d"\ncategory = "gpu"\n[[rule]]\n'
                    'id = "mine.a"\nstrip = ["/a"]\n')
    with pytest.raises(ProfileError, match="'category' must be one of ml"):
        load_profile_file(str(path))


def test_conditions_enter_the_options_digest() -> None:
    def digest(**kw: tuple[str, ...]) -> str:
        rule = Rule(id="p.a", profile="p", description="", strip=("/a",), **kw)  # type: ignore[arg-type]
        return options_digest(SlimOptions(), [Profile("p", "test", (rule,))])
    plain = digest()
    assert digest(if_image_has=("/m",)) != plain
    assert digest(unless_image_has=("/m",)) != plain
    assert digest(if_image_has=("/m",)) != digest(unless_image_has=("/m",))


# --- ML image detection -------------------------------------------------------------------------

def test_detect_ml() -> None:
    assert detect_ml(["/usr/bin/python3", "/etc/os-release"]) == []
    assert detect_ml([f"{SP}/torch/__init__.py", f"{SP}/nvidia/cu13/lib/libcudart.so.13"]) == \
        ["torch", "cuda"]
    assert detect_ml([f"{DP}/tensorflow/__init__.py"]) == ["tensorflow"]
    assert detect_ml([f"{SP}/jaxlib/__init__.py"]) == ["jax"]
    assert detect_ml(["/usr/local/cuda-12.4/lib64/libcublas.so.12"]) == ["cuda"]
    assert detect_ml([f"{SP}/torch/lib/libamdhip64.so"]) == ["rocm"]
    assert detect_ml([f"{SP}/mytorch/__init__.py", "/srv/torch/__init__.py"]) == []
