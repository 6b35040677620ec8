"""The --cuda-arch policy: which cubin the runtime would load on a GPU, which PTX it could
compile, GPU names and aliases."""

from __future__ import annotations

import pytest

from slimmer.errors import UsageError
from slimmer.gpu.arch import Arch, Gpu, Variant, choose, jits_ptx, parse_gpus, runs_cubin

A, F, G = Variant.SPECIFIC, Variant.FAMILY, Variant.GENERIC


def arch(name: str) -> Arch:
    variant = Variant(name[-1]) if name[-1] in "af" else G
    return Arch.of_number(int(name.rstrip("af")), variant)


def kept(codes: list[str], gpus: str, ptx: bool = True) -> list[str]:
    """Names kept from ``codes`` ('sm_90', 'compute_80') for the GPUs ``gpus``."""
    parsed = [(c.startswith("sm_"), arch(c.split("_")[1])) for c in codes]
    choice = choose(parsed, parse_gpus([gpus]), ptx)
    return [codes[i] for i in sorted(choice.keep)]


@pytest.mark.parametrize("code, gpu, runs", [
    ("80", "86", True), ("86", "80", False), ("80", "90", False), ("75", "75", True),
    ("90a", "90", True), ("90a", "100", False), ("100a", "103", False),
    ("100f", "103", True), ("103f", "100", False), ("120f", "121", True), ("100", "103", True),
    ("120", "100", False),
])
def test_binary_compatibility(code: str, gpu: str, runs: bool) -> None:
    g = parse_gpus([gpu])[0]
    assert runs_cubin(arch(code), g) is runs


@pytest.mark.parametrize("code, gpu, jits", [
    ("80", "90", True), ("120", "90", False), ("90", "120", True), ("75", "75", True),
    ("90a", "90", True), ("90a", "100", False), ("100f", "103", True), ("100f", "120", False),
])
def test_ptx_compiles_for_newer_gpus(code: str, gpu: str, jits: bool) -> None:
    assert jits_ptx(arch(code), parse_gpus([gpu])[0]) is jits


def test_highest_compatible_minor_wins() -> None:
    codes = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    assert kept(codes, "sm_86") == ["sm_86"]          # not also sm_80
    assert kept(codes, "sm_89") == ["sm_86"]          # no sm_89 cubin: sm_86 runs on it
    assert kept(codes, "sm_90") == ["sm_90"]
    assert kept(codes, "sm_80,sm_90") == ["sm_80", "sm_90"]
    assert kept(codes, "sm_103") == ["sm_100"]


def test_specific_variants() -> None:
    codes = ["sm_90", "sm_90a", "sm_100", "sm_100a", "sm_103f"]
    assert kept(codes, "h100") == ["sm_90a"]          # the arch-specific build for this GPU
    assert kept(codes, "b200") == ["sm_100a"]
    assert kept(codes, "b300") == ["sm_103f"]         # family code of its own minor


def test_newest_usable_ptx_is_kept_unless_no_ptx() -> None:
    codes = ["sm_80", "compute_75", "compute_80", "compute_120"]
    assert kept(codes, "sm_90") == ["compute_80"]     # no cubin runs on 9.0; PTX 8.0 does
    assert kept(codes, "sm_80") == ["sm_80", "compute_80"]
    assert kept(codes, "sm_80", ptx=False) == ["sm_80"]
    assert kept(codes, "sm_120") == ["compute_120"]


def test_unserved_gpus_are_named() -> None:
    parsed = [(True, arch("100")), (False, arch("120"))]
    choice = choose(parsed, parse_gpus(["sm_90"]))
    assert choice.unserved == (Gpu(9, 0),) and not choice.keep
    assert choose(parsed, parse_gpus(["sm_90", "sm_120"])).unserved == (Gpu(9, 0),)


def test_names_aliases_and_lists() -> None:
    assert parse_gpus(["h100", "sm_90", "compute_90", "90", "sm_90a"]) == (Gpu(9, 0),)
    assert parse_gpus(["a100,l4", "B200"]) == (Gpu(8, 0), Gpu(8, 9), Gpu(10, 0))
    assert parse_gpus([]) == ()
    assert str(arch("100f")) == "sm_100f" and arch("90a").name == "sm_90a"


@pytest.mark.parametrize("bad", ["sm_91", "h1000", "sm90x", "rtx"])
def test_unknown_arch_is_a_usage_error_listing_known_ones(bad: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_gpus([bad])
    message = str(exc.value)
    assert repr(bad) in message and "sm_90" in message and "h100" in message
    assert "\n" not in message
