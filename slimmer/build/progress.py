"""Progress of a run as the library reports it: ``progress(stage, done, total)`` for the stage
totals ("scan" counts layers, "build" bytes of input tar), and, for a callback that also has a
``layer`` method (``LayerProgress``), each layer from queued to finished."""

from __future__ import annotations

import dataclasses
import threading
from typing import BinaryIO, Callable, Protocol, runtime_checkable

from slimmer.oci.image import Layer

#: ``progress(stage, done, total)``: "scan" counts layers, "build" bytes of input tar.
ProgressFn = Callable[[str, int, int], None]
#: What a layer's work calls with each amount of bytes done (None: the layer is finished).
Ticker = Callable[[int | None], None]


@runtime_checkable
class LayerProgress(Protocol):
    """A progress callback that also follows each layer: ``layer(stage, name, done, total)``
    is called with ``done=0`` when a layer is queued, as its bytes go by ("scan": compressed
    bytes read, "build": input tar bytes), and with ``done == total`` when it is finished.
    Calls come from worker threads, one at a time."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...

    def layer(self, stage: str, name: str, done: int, total: int) -> None: ...


def layer_ticker(progress: ProgressFn | None, lock: threading.Lock, stage: str, name: str,
                 total: int) -> Ticker | None:
    """Announce a queued layer to a LayerProgress; None for other callbacks."""
    if not isinstance(progress, LayerProgress):
        return None
    lp = progress
    done = [0]

    def tick(n: int | None) -> None:
        with lock:
            done[0] = total if n is None else min(done[0] + n, total)
            lp.layer(stage, name, done[0], total)

    tick(0)
    return tick


class _CountedStream:
    """A blob stream that reports the bytes read through it."""

    def __init__(self, raw: BinaryIO, tick: Ticker) -> None:
        self._raw = raw
        self._tick = tick

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._tick(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


def counted(layer: Layer, tick: Ticker) -> Layer:
    """``layer`` whose streams report the compressed bytes read."""
    def opener() -> BinaryIO:
        return _CountedStream(layer.open_compressed(), tick)  # type: ignore[return-value]
    return dataclasses.replace(layer, open_compressed=opener)


def finishing(fn: Callable[..., object], tick: Ticker | None) -> Callable[..., object]:
    """``fn`` that marks its layer finished when it returns."""
    if tick is None:
        return fn

    def run(*args: object, **kw: object) -> object:
        result = fn(*args, **kw)
        tick(None)
        return result
    return run
