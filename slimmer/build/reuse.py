"""Build an output layer, unless the layer cache knows the blob it would become and the
destination has it or can mount it from another repository of its registry: then neither the
compression nor the upload happens. Also where zstd's ultra levels (20-22) are kept to one
compressor at a time with at most ULTRA_THREADS workers, so their memory stays bounded
whatever the number of cores (zstd's output does not depend on the worker count).

A cache entry is never trusted: the destination is asked (HEAD, then mounts), and an entry
whose blob is missing everywhere or has another size is dropped and the layer is built again.
What was built is recorded only after the destination committed (``record``).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Sequence

from slimmer.build.cache import LayerCache, input_hint, layer_key
from slimmer.build.layer import Progress, build_layer
from slimmer.codec.compression import codec_version
from slimmer.codec.result import LayerResult
from slimmer.oci.image import BlobOrigin, BlobReuse, Layer, ReusesBlobs, Sink
from slimmer.oci.media import OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, ZSTD, Compression
from slimmer.oci.refs import canonical_registry
from slimmer.options import ULTRA_LEVEL, ULTRA_THREADS
from slimmer.plan.model import PASSTHROUGH, OutputLayer

_MEDIA_TYPE = {Compression.ZSTD: OCI_LAYER_ZSTD, Compression.GZIP: OCI_LAYER_GZIP,
               Compression.NONE: OCI_LAYER_TAR}


def _where(origin: BlobOrigin | None) -> BlobOrigin | None:
    return None if origin is None else BlobOrigin(canonical_registry(origin.registry),
                                                  origin.repository)


class LayerBuilder:
    """``build_layer`` with the layer cache in front; called like it, from many threads."""

    def __init__(self, sink: Sink, cache: LayerCache | None, fingerprint: str = "") -> None:
        self.sink = sink
        self.fingerprint = fingerprint         # the options digest: what the hints are under
        self.cache = cache if cache is not None and cache.enabled else None
        self._reuses = isinstance(sink, ReusesBlobs)
        self._origin = _where(sink.blob_origin()) if isinstance(sink, ReusesBlobs) else None
        self._lock = threading.Lock()
        self._ultra = threading.Semaphore(1)   # one ultra-level zstd compressor at a time
        self._done: list[tuple[str, LayerResult, str]] = []
        self._hints: list[tuple[str, LayerResult, str]] = []   # single-input results by input

    def __call__(self, out: OutputLayer, layers: Sequence[Layer], sink: Sink, *,
                 level: int, threads: int = 0, progress: Progress | None = None,
                 scanned: bool = False) -> LayerResult:
        """The blob for ``out`` in the sink: reused when the cache and the destination agree,
        else built (and remembered for ``record``)."""
        if out.mode == PASSTHROUGH:
            return build_layer(out, layers, sink, level=level, threads=threads,
                               progress=progress, scanned=scanned)
        key = None
        if self.cache is not None:
            key = layer_key(out, layers, level, codec_version(out.compression))
            hit = self._reuse(key)
            if hit is not None:
                if progress:
                    progress(out.input_tar_size or out.input_size)
                self._remember(key, out, layers, level, hit)
                return hit
        ultra = out.compression == ZSTD and level >= ULTRA_LEVEL
        with self._ultra if ultra else nullcontext():
            result = build_layer(out, layers, sink, level=level,
                                 threads=min(threads or ULTRA_THREADS, ULTRA_THREADS)
                                 if ultra else threads, progress=progress, scanned=scanned)
        if key is not None:
            self._remember(key, out, layers, level, result)
        return result

    def built(self, out: OutputLayer, layers: Sequence[Layer], level: int,
              result: LayerResult) -> None:
        """Remember a layer built elsewhere (in its scan's pass, ``build.speculate``)."""
        if self.cache is not None and out.mode != PASSTHROUGH:
            key = layer_key(out, layers, level, codec_version(out.compression))
            self._remember(key, out, layers, level, result)

    def _remember(self, key: str, out: OutputLayer, layers: Sequence[Layer], level: int,
                  result: LayerResult) -> None:
        """Record a result for ``record``; one made from a single input layer also under
        that layer (``expects``)."""
        entry = (key, result, _MEDIA_TYPE[result.compression])
        hint = None
        if self.fingerprint and out.sources == out.inputs and len(out.inputs) == 1:
            hint = (self._hint(layers[out.inputs[0]], out.compression, level),) + entry[1:]
        with self._lock:
            self._done.append(entry)
            if hint is not None:
                self._hints.append(hint)

    def expects(self, layer: Layer, compression: Compression, level: int) -> bool:
        """Whether the cache holds a result of ``layer`` alone under these options whose blob
        the destination has (or just mounted): then building it during the scan would be
        wasted work and upload, so it is left to the plan and the cache."""
        if self.cache is None or not self._reuses or not self.fingerprint:
            return False
        entry = self.cache.get(self._hint(layer, compression, level))
        if entry is None:
            return False
        digest = entry.result.digest
        origins = self.cache.origins(digest, self._origin.registry) \
            if self._origin is not None else ()
        state = self.sink.reuse_blob(digest, entry.result.size, origins)  # type: ignore[attr-defined]
        return state in (BlobReuse.PRESENT, BlobReuse.MOUNTED)

    def _hint(self, layer: Layer, compression: Compression, level: int) -> str:
        return "input:" + input_hint(layer.diff_id, self.fingerprint, compression.value, level,
                                     codec_version(compression))

    def _reuse(self, key: str) -> LayerResult | None:
        """The cached result for ``key`` if the destination has its blob or mounted it."""
        assert self.cache is not None
        entry = self.cache.get(key)
        if entry is None or not self._reuses:
            return None
        digest, size = entry.result.digest, entry.result.size
        origins = self.cache.origins(digest, self._origin.registry) \
            if self._origin is not None else ()
        state = self.sink.reuse_blob(digest, size, origins)  # type: ignore[attr-defined]
        if state in (BlobReuse.PRESENT, BlobReuse.MOUNTED):
            return entry.result
        self.cache.drop(key)
        if state == BlobReuse.MISSING:
            for origin in origins:
                self.cache.forget(digest, origin)
        return None

    def record(self, blobs: Sequence[str] = ()) -> None:
        """After the destination committed: remember what was built or reused, and that the
        destination holds those blobs and ``blobs`` (configs), for later mounts."""
        if self.cache is None:
            return
        with self._lock:
            done, self._done = self._done, []
            hints, self._hints = self._hints, []
        self.cache.put(done + hints, self._origin, blobs)

    def known_origins(self, digest: str) -> tuple[BlobOrigin, ...]:
        """Repositories of the destination's registry the cache saw ``digest`` pushed to."""
        if self.cache is None or self._origin is None:
            return ()
        return self.cache.origins(digest, self._origin.registry)
