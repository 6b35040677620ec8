"""Give heap memory freed by the pipeline back to the system while big layers stream.

The pipeline hands 1 MiB ``bytes`` chunks from thread to thread (decoder, tar filter,
compressor, output). glibc keeps much of what they free in its arenas instead of returning
it; on a 10 GiB ML image that retained memory took the peak RSS of a recompression to
332 MiB, against about 200 MiB with a ``malloc_trim`` every 0.1 s (README, Performance).
Trimming is rate-limited process-wide and a no-op without glibc; ``SLIMMER_MALLOC_TRIM=0``
turns it off (to measure it).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Any, Callable

#: At most one trim per this many seconds, whatever the number of layers in flight.
TRIM_INTERVAL = 0.1


def _malloc_trim() -> Callable[[int], Any] | None:
    if os.environ.get("SLIMMER_MALLOC_TRIM", "1") == "0":
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):      # not glibc (musl, macOS): nothing to trim
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn   # type: ignore[no-any-return]


_trim = _malloc_trim()
_lock = threading.Lock()
_last = 0.0


def release_free_memory() -> None:
    """Return freed heap memory to the system, unless another thread did so very recently
    (the call runs without the GIL)."""
    global _last
    if _trim is None:
        return
    now = time.monotonic()
    if now - _last < TRIM_INTERVAL or not _lock.acquire(blocking=False):
        return
    try:
        _last = now
        _trim(0)
    finally:
        _lock.release()
