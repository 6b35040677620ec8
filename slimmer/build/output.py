"""The output images of a push: the plans of every compression variant (one, or gzip and
zstd for ``--compression gzip+zstd``), and their configs and manifests, written in the order
the index lists them."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from slimmer.build.assemble import build_config, build_manifest, config_media_type
from slimmer.build.reuse import LayerBuilder
from slimmer.codec.result import LayerResult
from slimmer.fs.index import LayerIndex
from slimmer.oci.digest import sha256_digest
from slimmer.oci.image import BlobReuse, ReusesBlobs, Root, Sink
from slimmer.oci.media import ANNOT_COMPRESSION_ZSTD, ZSTD
from slimmer.oci.model import Descriptor
from slimmer.options import SlimOptions
from slimmer.plan.image import variant_plan
from slimmer.plan.model import ImagePlan, PlanOptions


def variant_plans(root: Root, plans: list[ImagePlan],
                   indexes: list[dict[int, LayerIndex] | None],
                   options: SlimOptions) -> list[list[ImagePlan]]:
    """The plans of every compression variant: one, or the gzip plans and their zstd twins."""
    out = [plans]
    for compression in options.variants[1:]:
        popts = PlanOptions.of(options, compression)
        out.append([variant_plan(plan, [ly.descriptor.size for ly in image.layers],
                                 [ly.descriptor.media_type for ly in image.layers], idx, popts)
                    for image, plan, idx in zip(root.images, plans, indexes)])
    return out


def repeat(root: Root, times: int) -> Root:
    """``root`` with its images listed ``times`` over (one copy per variant)."""
    return root if times == 1 else dataclasses.replace(root, images=root.images * times)


def write_manifests(root: Root, variants: Sequence[Sequence[ImagePlan]],
                     results: Sequence[Sequence[list[LayerResult]]], sink: Sink,
                     options: SlimOptions, fingerprint: str,
                     builder: LayerBuilder) -> tuple[list[Descriptor], list[str]]:
    """Config and manifest of every image of every variant, in index order: all of the first
    variant, then the next; zstd entries of a gzip+zstd index carry podman's marker. Returns
    the manifests' descriptors and the config digests."""
    dual = len(variants) > 1
    manifests: list[Descriptor] = []
    configs: list[str] = []
    for v, (plans, vres) in enumerate(zip(variants, results)):
        for image, plan, res in zip(root.images, plans, vres):
            cfg_raw = build_config(image, plan, res)
            cfg_type = config_media_type(image, res, oci=dual)
            cfg = put_config(sink, cfg_raw, cfg_type, builder)
            configs.append(cfg.digest)
            man_raw, man_type = build_manifest(image, plan, res, cfg, options.base, fingerprint,
                                               oci=dual)
            desc = sink.put_manifest(man_raw, man_type)
            marker = {ANNOT_COMPRESSION_ZSTD: "true"} \
                if dual and options.variants[v] == ZSTD else None
            platform = image.descriptor.platform or (image.platform if dual else None)
            manifests.append(Descriptor(desc.media_type, desc.digest, desc.size, marker,
                                        platform or None))
    return manifests, configs


def put_config(sink: Sink, raw: bytes, media_type: str, builder: LayerBuilder) -> Descriptor:
    """Store a config; one the layer cache saw pushed to this registry is only checked (HEAD)
    or mounted from there, so a result whose every blob is known costs manifest PUTs only."""
    digest = sha256_digest(raw)
    origins = builder.known_origins(digest)
    if origins and isinstance(sink, ReusesBlobs) and \
            sink.reuse_blob(digest, len(raw), origins) in (BlobReuse.PRESENT, BlobReuse.MOUNTED):
        return Descriptor(media_type, digest, len(raw))
    return sink.put_manifest(raw, media_type)
