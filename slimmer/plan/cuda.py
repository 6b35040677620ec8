"""``--cuda-arch``: which GPU code each file with CUDA fat binaries keeps.

For every container of every such file, ``gpu.arch.choose`` keeps, per listed GPU, the cubin
the CUDA runtime would load on it and the newest PTX it could compile (unless ``--no-ptx``);
everything else is dropped from the container. A container none of whose code any listed GPU
can use (kernels a library builds only for another generation) is emptied: its header stays,
announcing no entries, so the runtime finds no code for the listed GPUs in it, as before. A
file is left as it is when its fat binaries did not parse
(``CudaFile.problem``), when a listed GPU finds no code it can use in any of its containers
(the library does not work there as it is; the report flags it), when nothing would be
dropped, or when its layer is passed through.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from slimmer.fs.index import Rec
from slimmer.fs.overlay import Ref, ancestors
from slimmer.fs.stack import Stack
from slimmer.gpu.arch import Gpu, choose, parse_gpus
from slimmer.gpu.model import CudaFile, FatbinContainer
from slimmer.oci.layer import FILE
from slimmer.plan.model import ContainerEdit, CudaLibrary, CudaStatus, PlanOptions, Rewrite


def decide_rewrites(stack: Stack, recs: Sequence[Sequence[Rec]], kept: set[int],
                    dropped: set[Ref], options: PlanOptions
                    ) -> tuple[dict[Ref, Rewrite], list[CudaLibrary]]:
    """The rewrites of the stack's CUDA files, and a report line per file (by path, layer)."""
    rewrites: dict[Ref, Rewrite] = {}
    libraries: list[CudaLibrary] = []
    if not options.cuda_arch:
        return rewrites, libraries
    gpus = parse_gpus(options.cuda_arch)
    sites = {p.rsplit("/", 2)[0] for p in stack.final.entries
             if p.endswith(".dist-info/RECORD") and p.count("/") >= 2}
    linked = set(stack.link_src.values())   # a stripped file's data may live on in a link
    for j, layer in enumerate(recs):
        for o, rec in enumerate(layer):
            cuda = rec.cuda
            if cuda is None or rec.kind != FILE or ((j, o) in dropped and (j, o) not in linked):
                continue
            rewrite, line = judge(rec, cuda, gpus, not options.no_ptx)
            shadowed = (j, o) not in stack.final_refs
            listed = any(a in sites for a in ancestors(rec.path))
            if j in kept:
                line = CudaLibrary(rec.path, j, rec.size, line.code_before, line.code_before,
                                   line.kept + line.dropped, (), CudaStatus.KEPT_LAYER,
                                   "layer passed through unchanged", shadowed, listed)
            else:
                line = CudaLibrary(rec.path, j, rec.size, line.code_before, line.code_after,
                                   line.kept, line.dropped, line.status, line.detail, shadowed,
                                   listed)
                if rewrite is not None:
                    rewrites[(j, o)] = rewrite
            libraries.append(line)
    libraries.sort(key=lambda c: (c.path, c.layer))
    return rewrites, libraries


def judge(rec: Rec, cuda: CudaFile, gpus: Sequence[Gpu], ptx: bool
          ) -> tuple[Rewrite | None, CudaLibrary]:
    """The rewrite of one file (None: left as it is) and its report line."""
    before = cuda.code_bytes
    every = _labels(cuda.containers)
    if cuda.problem is not None:
        return None, CudaLibrary(rec.path, 0, rec.size, before, before, every, (),
                                 CudaStatus.MALFORMED, cuda.problem)
    edits: list[ContainerEdit] = []
    kept_labels: set[str] = set()
    dropped_labels: set[str] = set()
    unserved: dict[Gpu, int] = {}
    other = 0
    for box in cuda.containers:
        choice = choose([(e.is_cubin, e.arch) for e in box.entries], gpus, ptx)
        for gpu in choice.unserved:
            unserved[gpu] = unserved.get(gpu, 0) + 1
        if len(choice.unserved) == len(gpus):
            # Code for other GPUs only (a library's kernels for another generation): the
            # listed GPUs can use none of it before or after, so the container is emptied.
            other += 1
        for i, e in enumerate(box.entries):
            (kept_labels if i in choice.keep else dropped_labels).add(e.label)
        if len(choice.keep) < len(box.entries):
            edits.append(ContainerEdit(box.offset, box.size, tuple(
                (e.offset, e.size) for i, e in enumerate(box.entries) if i in choice.keep)))
    total = len(cuda.containers)
    missing = sorted(g for g, n in unserved.items() if n == total)
    if missing:
        detail = "; ".join(f"no cubin or usable PTX for {g} in any of its {total} containers"
                           for g in missing)
        return None, CudaLibrary(rec.path, 0, rec.size, before, before, every, (),
                                 CudaStatus.NO_CODE, detail)
    detail = "; ".join(f"{n} of {total} containers hold no code for {g}"
                       for g, n in sorted(unserved.items()))
    if other:
        detail += f" ({other} with code for other GPUs only, emptied)"
    if not edits:
        return None, CudaLibrary(rec.path, 0, rec.size, before, before, every, (),
                                 CudaStatus.ALL_NEEDED, detail)
    rewrite = Rewrite(rec.size, tuple(edits))
    return rewrite, CudaLibrary(rec.path, 0, rec.size, before, before - rewrite.blanked,
                                tuple(sorted(kept_labels)),
                                tuple(sorted(dropped_labels - kept_labels)), CudaStatus.PRUNED,
                                detail)


def _labels(boxes: Iterable[FatbinContainer]) -> tuple[str, ...]:
    seen: set[str] = set()
    for box in boxes:
        seen.update(e.label for e in box.entries)
    return tuple(sorted(seen))
