"""The plan's --cuda-arch decisions for one file: what each container keeps, and when a file
is left as it is."""

from __future__ import annotations

from slimmer.fs.index import Rec
from slimmer.gpu.arch import Arch, Variant, parse_gpus
from slimmer.gpu.model import CudaFile, FatbinContainer, FatbinEntry, FatbinSection
from slimmer.oci.layer import FILE
from slimmer.plan.cuda import judge
from slimmer.plan.model import CudaStatus


def box(offset: int, *codes: str) -> FatbinContainer:
    """A container at ``offset`` of 100-byte entries named like 'sm_90a' or 'compute_80'."""
    entries = []
    for i, code in enumerate(codes):
        kind, number = code.split("_")
        variant = Variant(number[-1]) if number[-1] in "af" else Variant.GENERIC
        entries.append(FatbinEntry(offset + 16 + 100 * i, 100, 2 if kind == "sm" else 1,
                                   Arch.of_number(int(number.rstrip("af")), variant), False))
    return FatbinContainer(offset, 16 + 100 * len(codes), tuple(entries))


def file_of(*boxes: FatbinContainer, problem: str | None = None) -> tuple[Rec, CudaFile]:
    rec = Rec("lib/libx.so", FILE, "lib/libx.so", 100_000, "", 0o755, b"0", 512)
    return rec, CudaFile((FatbinSection(".nv_fatbin", 1000, 10_000),), boxes, problem)


def test_each_container_keeps_what_the_gpus_use() -> None:
    rec, cuda = file_of(box(1000, "sm_80", "sm_86", "sm_90", "compute_90"),
                        box(1416, "sm_80", "sm_90a", "compute_120"))
    rewrite, line = judge(rec, cuda, parse_gpus(["sm_90"]), True)
    assert rewrite is not None and line.status == CudaStatus.PRUNED
    assert [e.keep for e in rewrite.edits] == [((1216, 100), (1316, 100)), ((1532, 100),)]
    assert line.kept == ("compute_90", "sm_90", "sm_90a")
    assert line.dropped == ("compute_120", "sm_80", "sm_86")
    assert line.code_before - line.code_after == rewrite.blanked == 400
    rewrite, line = judge(rec, cuda, parse_gpus(["sm_90"]), False)
    assert rewrite is not None and line.kept == ("sm_90", "sm_90a")


def test_containers_for_other_gpus_only_are_emptied() -> None:
    rec, cuda = file_of(box(1000, "sm_80", "sm_90"), box(1216, "sm_100", "sm_120"))
    rewrite, line = judge(rec, cuda, parse_gpus(["sm_90"]), True)
    assert rewrite is not None
    assert [(e.offset, e.keep) for e in rewrite.edits] == [(1000, ((1116, 100),)), (1216, ())]
    assert line.status == CudaStatus.PRUNED and not line.flagged
    assert line.detail == "1 of 2 containers hold no code for sm_90 (1 with code for other " \
        "GPUs only, emptied)"
    assert line.kept == ("sm_90",) and line.dropped == ("sm_100", "sm_120", "sm_80")


def test_a_gpu_without_code_anywhere_leaves_the_file_flagged() -> None:
    rec, cuda = file_of(box(1000, "sm_100", "compute_120"), box(1232, "sm_120"))
    rewrite, line = judge(rec, cuda, parse_gpus(["sm_90", "sm_100"]), True)
    assert rewrite is None and line.status == CudaStatus.NO_CODE and line.flagged
    assert line.detail == "no cubin or usable PTX for sm_90 in any of its 2 containers"
    assert line.code_after == line.code_before


def test_malformed_and_fully_needed_files() -> None:
    rec, cuda = file_of(box(1000, "sm_90"), problem="container at 0x3e8: truncated")
    rewrite, line = judge(rec, cuda, parse_gpus(["sm_90"]), True)
    assert rewrite is None and line.status == CudaStatus.MALFORMED and line.flagged
    rec, cuda = file_of(box(1000, "sm_80", "sm_90"))
    rewrite, line = judge(rec, cuda, parse_gpus(["sm_80", "sm_90"]), True)
    assert rewrite is None and line.status == CudaStatus.ALL_NEEDED and not line.flagged
