"""New config, manifest and index from the plan and the built layers.

Output JSON is canonical (sorted keys, compact), so the same input and options give the same
digests. Docker schema2 inputs become OCI whenever a zstd layer is written.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from slimmer.codec.result import LayerResult
from slimmer.oci.image import Image, Root
from slimmer.oci.media import (
    ANNOT_BASE_DIGEST,
    ANNOT_BASE_NAME,
    ANNOT_OPTIONS_DIGEST,
    ANNOT_SOURCE_DIGEST,
    DOCKER_CONFIG,
    DOCKER_LAYER_FOREIGN,
    DOCKER_LAYER_GZIP,
    DOCKER_LAYER_TAR,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_TYPES,
    GZIP,
    NONE,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    ZSTD,
)
from slimmer.oci.model import Descriptor, dump_json
from slimmer.plan.model import PASSTHROUGH, ImagePlan, OutputLayer

_TO_OCI = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER_TAR: OCI_LAYER_TAR,
           DOCKER_LAYER_FOREIGN: OCI_LAYER_NONDIST_GZIP, DOCKER_MANIFEST: OCI_MANIFEST,
           DOCKER_LIST: OCI_INDEX, DOCKER_CONFIG: OCI_CONFIG}
_OCI_LAYER = {ZSTD: OCI_LAYER_ZSTD, GZIP: OCI_LAYER_GZIP, NONE: OCI_LAYER_TAR}
_DOCKER_LAYER = {GZIP: DOCKER_LAYER_GZIP, NONE: DOCKER_LAYER_TAR}


def uses_oci(image: Image, results: Sequence[LayerResult], force: bool = False) -> bool:
    """Whether the output must use OCI media types (source is OCI, or a layer is zstd, or
    ``force``: both variants of a gzip+zstd index are OCI)."""
    return force or image.manifest.media_type not in DOCKER_TYPES or any(
        r.compression == ZSTD for r in results)


def layer_descriptor(image: Image, out: OutputLayer, result: LayerResult, oci: bool
                     ) -> Descriptor:
    """Descriptor of one output layer; passed-through layers keep urls and annotations."""
    if out.mode == PASSTHROUGH:
        src = image.layers[out.inputs[0]].descriptor
        media_type = _TO_OCI.get(src.media_type, src.media_type) if oci else src.media_type
        return Descriptor(media_type, src.digest, src.size, src.annotations, None, src.extra)
    table = _OCI_LAYER if oci else _DOCKER_LAYER
    return Descriptor(table[result.compression], result.digest, result.size)


def _history(image: Image, plan: ImagePlan) -> list[dict[str, Any]]:
    """History with one non-empty entry per output layer; merged layers' entries collapse into
    the last one, ``empty_layer`` entries stay where they were."""
    hist = [dict(h.doc) for h in image.config.history]
    layer_of_entry: dict[int, int] = {}
    li = 0
    for i, h in enumerate(hist):
        if not h.get("empty_layer"):
            layer_of_entry[i] = li
            li += 1
    group_of = {j: g for g, out in enumerate(plan.layers) for j in out.inputs}
    if li != len(image.layers):
        # History does not line up with the layers: keep empty entries, describe layers anew.
        out_hist = [h for h in hist if h.get("empty_layer")]
        for out in plan.layers:
            out_hist.append({"created_by": "slimmer", "comment": _comment(out)})
        return out_hist
    out_hist = []
    for i, h in enumerate(hist):
        if i not in layer_of_entry:
            out_hist.append(h)
            continue
        j = layer_of_entry[i]
        out = plan.layers[group_of[j]]
        if j != out.inputs[-1]:
            continue
        entry = dict(h)
        if len(out.inputs) > 1:
            merged = [hist[k] for k, lj in layer_of_entry.items() if lj in out.inputs]
            entry["created_by"] = " && ".join(
                str(m.get("created_by", "")) for m in merged if m.get("created_by"))
        note = _comment(out)
        if note:
            entry["comment"] = (str(entry["comment"]) + "; " if entry.get("comment") else "") + note
        out_hist.append(entry)
    return out_hist


def _comment(out: OutputLayer) -> str:
    parts = []
    if len(out.inputs) > 1:
        parts.append(f"slimmer: merged layers {out.inputs[0]}-{out.inputs[-1]}")
    if out.removed:
        parts.append(f"slimmer: removed {len(out.removed)} files ({out.removed_bytes} bytes)")
    return "; ".join(parts)


def build_config(image: Image, plan: ImagePlan, results: Sequence[LayerResult]) -> bytes:
    """New config bytes: diff_ids and history follow the output layers."""
    doc = copy.deepcopy(dict(image.config.doc))
    rootfs = dict(doc.get("rootfs") or {})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = [r.diff_id for r in results]
    doc["rootfs"] = rootfs
    if image.config.history or any(len(o.inputs) > 1 or o.removed for o in plan.layers):
        doc["history"] = _history(image, plan)
    return dump_json(doc)


def build_manifest(image: Image, plan: ImagePlan, results: Sequence[LayerResult],
                   config: Descriptor, base: int, options_digest: str | None = None,
                   oci: bool = False) -> tuple[bytes, str]:
    """New manifest bytes and media type; records the source digest in an annotation.
    ``oci``: use OCI media types even for a Docker schema2 source written with gzip."""
    oci = uses_oci(image, results, oci)
    layers = [layer_descriptor(image, out, res, oci).to_json()
              for out, res in zip(plan.layers, results)]
    annotations = dict(image.manifest.annotations or {})
    base_kept = base > 0 and all(plan.layers[i].mode == PASSTHROUGH and
                                 len(plan.layers[i].inputs) == 1 and plan.layers[i].inputs[0] == i
                                 for i in range(min(base, len(plan.layers))))
    if not base_kept:
        annotations.pop(ANNOT_BASE_DIGEST, None)
        annotations.pop(ANNOT_BASE_NAME, None)
    annotations[ANNOT_SOURCE_DIGEST] = image.descriptor.digest
    if options_digest:
        annotations[ANNOT_OPTIONS_DIGEST] = options_digest
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                           "config": config.to_json(), "layers": layers,
                           "annotations": annotations}
    return dump_json(doc), media_type


def config_media_type(image: Image, results: Sequence[LayerResult], oci: bool = False) -> str:
    return OCI_CONFIG if uses_oci(image, results, oci) else DOCKER_CONFIG


def build_index(root: Root, manifests: Sequence[Descriptor],
                options_digest: str | None = None) -> tuple[bytes, str]:
    """New index over the slimmed platform manifests (skipped entries are dropped); a new
    OCI index when the source was a single image (a gzip+zstd result)."""
    index = root.index
    oci = index is None or index.media_type not in DOCKER_TYPES or any(
        m.media_type == OCI_MANIFEST for m in manifests)
    media_type = OCI_INDEX if oci else DOCKER_LIST
    doc: dict[str, Any] = {k: v for k, v in (index.doc if index else {}).items()
                           if k not in ("manifests", "mediaType", "annotations")}
    doc["schemaVersion"] = 2
    doc["mediaType"] = media_type
    doc["manifests"] = [m.to_json() for m in manifests]
    annotations: Mapping[str, str] = dict((index.annotations if index else None) or {})
    doc["annotations"] = {**annotations, ANNOT_SOURCE_DIGEST: root.descriptor.digest}
    if options_digest:
        doc["annotations"][ANNOT_OPTIONS_DIGEST] = options_digest
    return dump_json(doc), media_type
