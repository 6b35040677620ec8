"""Helpers for layout tests: build tiny images and OCI layouts by hand (json + hashlib only)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    """Digest string of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A deterministic gzip tar layer of ``files``; returns (compressed bytes, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha256(raw)


def put_blob(layout: Path, data: bytes) -> dict[str, Any]:
    """Write ``data`` as a blob of ``layout``; returns {"digest", "size"}."""
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def blob_path(layout: Path, digest: str) -> Path:
    """Where ``digest`` lives in ``layout``."""
    algorithm, hexpart = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexpart


def config_doc(diff_ids: list[str], os_: str | None = "linux",
               arch: str | None = "amd64", variant: str | None = None) -> dict[str, Any]:
    """A minimal image config."""
    doc: dict[str, Any] = {"rootfs": {"type": "layers", "diff_ids": diff_ids},
                           "config": {"Cmd": ["/bin/sh"]},
                           "history": [{"created_by": f"layer {i}"} for i in range(len(diff_ids))]}
    if os_ is not None:
        doc["os"] = os_
    if arch is not None:
        doc["architecture"] = arch
    if variant is not None:
        doc["variant"] = variant
    return doc


def make_image(layout: Path, layers: list[dict[str, bytes]] | None = None, *,
               docker: bool = False, os_: str | None = "linux", arch: str | None = "amd64",
               variant: str | None = None, diff_ids: list[str] | None = None,
               manifest_media_type: bool = True) -> dict[str, Any]:
    """Write layers, config and manifest blobs by hand; returns the manifest descriptor dict."""
    if layers is None:
        layers = [{"etc/hello": b"hello " + (arch or "").encode()}]
    layer_descs, computed = [], []
    for files in layers:
        blob, diff_id = tar_gz(files)
        computed.append(diff_id)
        layer_descs.append({"mediaType": DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP,
                            **put_blob(layout, blob)})
    config = json.dumps(config_doc(computed if diff_ids is None else diff_ids, os_, arch,
                                   variant)).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                   **put_blob(layout, config)},
        "layers": layer_descs,
    }
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    if manifest_media_type:
        manifest["mediaType"] = media_type
    raw = json.dumps(manifest, indent=2).encode()
    return {"mediaType": media_type, **put_blob(layout, raw)}


def make_index(layout: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Write an image index blob listing ``entries``; returns its descriptor dict."""
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return {"mediaType": OCI_INDEX, **put_blob(layout, raw)}


def tagged(descriptor: dict[str, Any], tag: str) -> dict[str, Any]:
    """``descriptor`` with a ref.name annotation."""
    return {**descriptor, "annotations": {REF_NAME: tag}}


def platformed(descriptor: dict[str, Any], os_: str, arch: str,
               variant: str | None = None) -> dict[str, Any]:
    """``descriptor`` with a platform field."""
    platform = {"os": os_, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {**descriptor, "platform": platform}


def write_layout(layout: Path, entries: list[dict[str, Any]], **extra: Any) -> None:
    """Write ``oci-layout`` and ``index.json`` listing ``entries``."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries, **extra}
    (layout / "index.json").write_text(json.dumps(doc, indent=2))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its content (None for directories)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            out[os.path.join(rel, name) + "/"] = None
        for name in filenames:
            out[os.path.join(rel, name)] = Path(dirpath, name).read_bytes()
    return out


def write_with_sink(sink: Any, files: dict[str, bytes] | None = None,
                    arch: str = "amd64") -> Any:
    """Write a one-layer image through ``sink`` (not committed); returns the manifest Descriptor."""
    from slimmer.oci.model import Descriptor

    blob, diff_id = tar_gz(files or {"etc/hello": b"hello " + arch.encode()})
    layer = Descriptor(OCI_LAYER_GZIP, sha256(blob), len(blob))
    sink.copy_blob(layer, lambda: io.BytesIO(blob))
    config = sink.put_manifest(json.dumps(config_doc([diff_id], arch=arch)).encode(), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_json(),
                "layers": [layer.to_json()]}
    return sink.put_manifest(json.dumps(manifest).encode(), OCI_MANIFEST)
