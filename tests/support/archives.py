"""Helpers for archive tests: tar files built by hand with Python's tarfile (independent of
slimmer's tar code), in the shapes ``docker save`` writes."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Iterable, Sequence

from support.layoututil import config_doc, sha256

#: (name, content) for a file, (name, None) for a directory, (name, "->target") for a symlink.
Member = tuple[str, "bytes | str | None"]


def write_tar(path: Path, members: Iterable[Member]) -> Path:
    """A tar of ``members`` in the order given (mtime fixed)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content.removeprefix("->")
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return path


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar of ``files`` (what ``docker save`` stores)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def classic_members(layers: Sequence[dict[str, bytes]], tags: Sequence[str] = ("app:1",), *,
                    gzip_layers: bool = False, prefix: str = "",
                    arch: str = "amd64") -> tuple[list[Member], dict[str, Any]]:
    """The members of one image in the classic ``docker save`` shape (``<id>/layer.tar``,
    ``<config>.json``) and its ``manifest.json`` entry. ``gzip_layers``: compressed layer
    files, as older tools wrote them."""
    members: list[Member] = []
    diff_ids, paths = [], []
    for i, files in enumerate(layers):
        raw = layer_tar(files)
        diff_ids.append(sha256(raw))
        layer_id = f"{prefix}{i:02d}" + "0" * 60
        members.append((f"{layer_id}/", None))
        members.append((f"{layer_id}/VERSION", b"1.0"))
        members.append((f"{layer_id}/layer.tar", gzip.compress(raw, mtime=0) if gzip_layers
                        else raw))
        paths.append(f"{layer_id}/layer.tar")
    config = json.dumps(config_doc(diff_ids, arch=arch)).encode()
    config_name = sha256(config).split(":", 1)[1] + ".json"
    members.append((config_name, config))
    return members, {"Config": config_name, "RepoTags": list(tags), "Layers": paths}


def docker_archive(path: Path, images: Sequence[tuple[list[Member], dict[str, Any]]],
                   manifest: Any = None) -> Path:
    """A classic docker archive of ``images``; ``manifest`` replaces manifest.json's list."""
    members: list[Member] = [m for image_members, _ in images for m in image_members]
    doc = manifest if manifest is not None else [entry for _, entry in images]
    members.append(("manifest.json", json.dumps(doc).encode()))
    repositories: dict[str, dict[str, str]] = {}
    for _, entry in images:
        for tag in entry["RepoTags"] or ():
            repo, _, name = tag.rpartition(":")
            repositories.setdefault(repo, {})[name] = entry["Layers"][-1].split("/")[0]
    members.append(("repositories", json.dumps(repositories).encode()))
    return write_tar(path, members)


def layout_members(layout: Path) -> list[Member]:
    """The files of an OCI layout directory as archive members (sorted, dirs first)."""
    out: list[Member] = []
    for current, dirs, files in os.walk(layout):
        dirs.sort()
        rel = os.path.relpath(current, layout)
        if rel != ".":
            out.append((rel + "/", None))
        for name in sorted(files):
            member = name if rel == "." else f"{rel}/{name}"
            out.append((member, Path(current, name).read_bytes()))
    return out


def docker25_archive(path: Path, layout: Path, manifest_json: list[dict[str, Any]]) -> Path:
    """The shape Docker 25+ ``docker save`` writes: an OCI layout plus ``manifest.json``
    whose paths point into ``blobs/sha256/``."""
    members = layout_members(layout)
    members.append(("manifest.json", json.dumps(manifest_json).encode()))
    return write_tar(path, members)


def blob_member(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)
