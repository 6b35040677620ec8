"""A runnable test image for cold-start tests: the static C program ``coldstart_probe.c``
(compiled here with gcc) in a one-layer OCI layout, or added as a layer on top of an existing
layout (``scripts/make-coldstart-images`` does that to the bench images, which hold no
runnable program)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from support.layoututil import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, put_blob, tagged
from support.layoututil import write_layout as write_index

SOURCE = Path(__file__).with_name("coldstart_probe.c")
PROBE_PATH = "usr/local/bin/probe"
MTIME = 1_700_000_000


def missing_compiler() -> str | None:
    """Why the probe cannot be built here, or None."""
    if shutil.which("gcc") is None:
        return "gcc is not installed (scripts/setup --test)"
    return None


def build_probe(directory: Path) -> Path:
    """Compile the probe statically into ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "probe"
    if not out.exists():
        subprocess.run(["gcc", "-static", "-Os", "-o", str(out), str(SOURCE)], check=True,
                       capture_output=True)
    return out


def layer(files: dict[str, tuple[bytes, int]]) -> tuple[bytes, str]:
    """A gzip tar layer of ``{path: (content, mode)}`` with parent directories; returns
    (compressed bytes, diff_id)."""
    buf = io.BytesIO()
    dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        for name, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), mode, MTIME
            tar.addfile(info, io.BytesIO(content))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def probe_files(probe: Path, extra: dict[str, bytes] | None = None) -> dict[str, tuple[bytes,
                                                                                         int]]:
    files = {PROBE_PATH: (probe.read_bytes(), 0o755)}
    for name, content in (extra or {}).items():
        files[name] = (content, 0o644)
    return files


def _image(layout: Path, layers: list[dict[str, Any]], diff_ids: list[str],
           config: dict[str, Any], history: list[dict[str, Any]], tag: str,
           base: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = dict(base or {"architecture": "amd64", "os": "linux"})
    doc.update(config=config, rootfs={"type": "layers", "diff_ids": diff_ids},
               history=history)
    cfg = put_blob(layout, json.dumps(doc).encode())
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **cfg}, "layers": layers}
    desc = {"mediaType": OCI_MANIFEST, **put_blob(layout, json.dumps(manifest).encode())}
    write_index(layout, [tagged(desc, tag)])
    return desc


def probe_image(layout: Path, probe: Path, *, cmd: list[str] | None = None,
                extra: dict[str, bytes] | None = None, tag: str = "latest") -> dict[str, Any]:
    """A one-layer image holding the probe (and ``extra`` files); ``cmd`` is its Cmd
    (default: the probe in mode ``ok``). Returns the manifest descriptor."""
    blob, diff_id = layer(probe_files(probe, extra))
    layers = [{"mediaType": OCI_LAYER_GZIP, **put_blob(layout, blob)}]
    config = {"Cmd": cmd or ["/" + PROBE_PATH, "ok"], "Env": ["PATH=/usr/local/bin"]}
    return _image(layout, layers, [diff_id], config, [{"created_by": "probe"}], tag)


def add_probe_layer(src: Path, src_tag: str, dst: Path, probe: Path, *,
                    cmd: list[str] | None = None, tag: str = "latest") -> dict[str, Any]:
    """``dst``: the image ``src:src_tag`` plus one layer with the probe, whose Entrypoint is
    cleared and whose Cmd is ``cmd`` (default: the probe in mode ``ok``). Blobs are
    hardlinked from ``src`` where the filesystem allows, else copied."""
    index = json.loads((src / "index.json").read_text())
    entry = next(m for m in index["manifests"]
                 if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                 == src_tag)
    manifest = json.loads(_blob(src, entry["digest"]).read_bytes())
    config = json.loads(_blob(src, manifest["config"]["digest"]).read_bytes())
    for desc in manifest["layers"]:
        target = dst / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(_blob(src, desc["digest"]), target)
            except OSError:
                shutil.copyfile(_blob(src, desc["digest"]), target)
    blob, diff_id = layer(probe_files(probe))
    layers = list(manifest["layers"]) + [{"mediaType": OCI_LAYER_GZIP, **put_blob(dst, blob)}]
    run_config = dict(config.get("config") or {})
    run_config.pop("Entrypoint", None)
    run_config["Cmd"] = cmd or ["/" + PROBE_PATH, "ok"]
    history = list(config.get("history") or []) + [{"created_by": "COPY probe /usr/local/bin/"}]
    return _image(dst, layers, config["rootfs"]["diff_ids"] + [diff_id], run_config, history,
                  tag, base={k: v for k, v in config.items()
                             if k not in ("config", "rootfs", "history")})


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]
