"""The built-in proxy for machines without containerd or root: pull = copy every blob of the
image from its source into a fresh content directory (digests checked while streaming);
unpack = decompress every layer and untar it, in order, into a fresh root with whiteouts
applied (``coldstart.extract``). The image is not run, so there is no start time."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from typing import BinaryIO

from slimmer.codec.layerstream import open_layer_tar
from slimmer.coldstart.extract import Unpacker, remove_tree
from slimmer.coldstart.procs import Resource
from slimmer.errors import StartError
from slimmer.oci.digest import short
from slimmer.oci.image import Image, Layer
from slimmer.units import format_duration

_CHUNK = 1 << 20


class ProxyRun(Resource):
    """One cold run of the proxy in a fresh directory; use as a context manager."""

    def __init__(self, work_dir: str | None) -> None:
        self._work_dir = work_dir
        self.base = ""

    def _start(self) -> None:
        self.base = tempfile.mkdtemp(prefix="slim-proxy-", dir=self._work_dir)

    def _close(self) -> None:
        if self.base:
            remove_tree(self.base)
            os.sync()  # writeback of the removed tree must not land in the next run
            self.base = ""

    def _blob(self, digest: str) -> str:
        return os.path.join(self.base, "content", *digest.split(":", 1))

    def pull(self, image: Image, deadline: float, timeout: float) -> float:
        """Seconds to copy the manifest, config and every layer blob into the content dir."""
        t0 = time.monotonic()
        os.makedirs(os.path.dirname(self._blob("sha256:0")), exist_ok=True)
        for digest, data in ((image.descriptor.digest, image.manifest.raw),
                             (image.manifest.config.digest, image.config.raw)):
            with open(self._blob(digest), "wb") as fh:
                fh.write(data)
        for layer in image.layers:
            with layer.open_compressed() as src, \
                    open(self._blob(layer.descriptor.digest), "wb") as dst:
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    dst.write(chunk)
            _check(deadline, timeout, "pulling")
        return time.monotonic() - t0

    def unpack(self, image: Image, deadline: float, timeout: float) -> float:
        """Seconds to decompress and untar every pulled layer into a fresh root (diff_ids
        checked, as a runtime does)."""
        t0 = time.monotonic()
        root = os.path.join(self.base, "rootfs")
        os.mkdir(root)
        unpacker = Unpacker(root)
        for layer in image.layers:
            path = self._blob(layer.descriptor.digest)
            local = Layer(layer.descriptor, layer.diff_id, functools.partial(_open, path))
            what = f"unpacking layer {short(layer.descriptor.digest)}"
            with open_layer_tar(local, what) as (tar, _, _):
                unpacker.apply(tar, what)
            _check(deadline, timeout, "unpacking")
        return time.monotonic() - t0


def _open(path: str) -> BinaryIO:
    return open(path, "rb")


def _check(deadline: float, timeout: float, doing: str) -> None:
    """StartError once a run is past its deadline (checked after every layer)."""
    if time.monotonic() > deadline:
        raise StartError(f"not ready after {format_duration(timeout)} (still {doing})")
