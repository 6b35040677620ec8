"""The layer result cache: its SQLite store (bounded, shared by processes, off when broken),
its key (every input that decides a layer's bytes), and its use by ``slim`` with layout
destinations: a known layer the destination holds is not built again, a lying entry is
dropped and rebuilt."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

import slimmer
import slimmer.build.cache as cache_module
from slimmer.build.cache import LayerCache, default_path, layer_key
from slimmer.codec.result import LayerResult
from slimmer.oci.image import BlobOrigin
from slimmer.oci.media import GZIP, ZSTD
from slimmer.options import SlimOptions
from slimmer.plan.model import REBUILD, OutputLayer

from support.layoututil import make_image, tagged, write_layout
from support.memimage import MemSource, make_tar

EXAMPLE = "oci:testdata/example:latest"
D = "sha256:" + "a" * 64
E = "sha256:" + "e" * 64


def result(n: int, size: int = 10) -> LayerResult:
    return LayerResult(f"sha256:{n:064x}", size, D, 100, ZSTD)


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_path() == str(tmp_path / "slimmer" / "layers.db")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == str(tmp_path / "home" / ".cache" / "slimmer" / "layers.db")


def test_entries_origins_and_bounds(tmp_path: Path) -> None:
    cache = LayerCache(str(tmp_path / "c.db"), max_results=3, max_seen=100)
    here = BlobOrigin("reg:5000", "team/a")
    cache.put([("k0", result(0), "m")], here, blobs=[E])
    entry = cache.get("k0")
    assert entry is not None and entry.result == result(0) and entry.result.from_cache
    assert entry.media_type == "m"
    assert cache.origins(result(0).digest, "reg:5000") == (here,)
    assert cache.origins(E, "reg:5000") == (here,) and cache.origins(E, "other") == ()
    cache.put([("k0", result(0), "m")], BlobOrigin("reg:5000", "team/b"))
    assert [o.repository for o in cache.origins(result(0).digest, "reg:5000")] == \
        ["team/b", "team/a"]                     # most recent first
    cache.forget(result(0).digest, here)
    assert [o.repository for o in cache.origins(result(0).digest, "reg:5000")] == ["team/b"]
    for n in range(1, 6):                       # bounded: the least recently used go
        cache.put([(f"k{n}", result(n), "m")])
    assert cache.get("k0") is None and cache.get("k5") is not None
    assert cache.count()[0] == 3
    cache.drop("k5")
    assert cache.get("k5") is None
    for n in range(cache_module.SEEN_PER_BLOB + 3):
        cache.put([], BlobOrigin("reg:5000", f"r{n}"), blobs=[E])
    assert len(cache.origins(E, "reg:5000")) == cache_module.SEEN_PER_BLOB


def test_malformed_rows_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    cache = LayerCache(str(path))
    cache.put([("k", result(1), "m")])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE results SET digest = 'not a digest'")
    assert cache.get("k") is None and cache.count()[0] == 0


def _writer(path: str, worker: int) -> None:
    cache = LayerCache(path)
    for n in range(40):
        cache.put([(f"w{worker}-{n}", result(worker * 1000 + n), "m")],
                  BlobOrigin("reg", f"repo{worker}"))
        assert cache.get(f"w{worker}-{n}") is not None
    assert cache.problem is None, cache.problem


def test_processes_share_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_writer, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert LayerCache(path).count() == (160, 160)


def test_an_unusable_cache_is_switched_off_not_fatal(tmp_path: Path) -> None:
    bad = tmp_path / "c.db"
    bad.write_bytes(b"this is not a database" * 100)
    cache = LayerCache(str(bad))
    assert not cache.enabled and cache.problem and "not used" in cache.problem
    assert cache.get("k") is None
    cache.put([("k", result(1), "m")])            # a no-op, not an error
    report = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'out'}:v", cache=cache)
    assert report.digest and any("layer cache" in w for w in report.warnings)


def test_key_covers_what_decides_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    layers = MemSource([make_tar([("file", "a", b"1")]), make_tar([("file", "b", b"2")])]) \
        .image.layers
    out = OutputLayer((0, 1), REBUILD, ZSTD, 10, 20)
    key = layer_key(out, layers, 2, "zstd 1.5.7")
    assert key == layer_key(out, layers, 2, "zstd 1.5.7")
    others = [layer_key(out, layers, 3, "zstd 1.5.7"),
              layer_key(out, layers, 2, "zstd 1.5.8"),
              layer_key(replace(out, compression=GZIP), layers, 2, "zstd 1.5.7"),
              layer_key(replace(out, inputs=(0,)), layers, 2, "zstd 1.5.7"),
              layer_key(out, [layers[0], replace(layers[1], diff_id=D)], 2, "zstd 1.5.7")]
    monkeypatch.setattr(cache_module, "OUTPUT_FORMAT", 99)
    others.append(layer_key(out, layers, 2, "zstd 1.5.7"))
    assert len({key, *others}) == len(others) + 1


# -- slim with the cache, layout destinations --------------------------------------------------

def test_second_push_reuses_known_layers(tmp_path: Path) -> None:
    cache = LayerCache(str(tmp_path / "c.db"))
    dest = tmp_path / "out"
    first = slimmer.slim(EXAMPLE, f"oci:{dest}:a", cache=cache)
    assert [ly.cached for ly in first.images[0].layers] == [False]
    second = slimmer.slim(EXAMPLE, f"oci:{dest}:b", cache=cache)
    assert [ly.cached for ly in second.images[0].layers] == [True]
    assert second.digest == first.digest
    # --no-cache (cache=False) builds again and writes nothing to the cache.
    third = slimmer.slim(EXAMPLE, f"oci:{dest}:c", cache=False)
    assert [ly.cached for ly in third.images[0].layers] == [False]
    # Another layout lacks the blob: the entry is dropped, the layer built, the entry put back.
    other = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'other'}:a", cache=cache)
    assert [ly.cached for ly in other.images[0].layers] == [False]
    assert other.digest == first.digest


def test_a_lying_entry_is_rebuilt_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    cache = LayerCache(str(path))
    dest = tmp_path / "out"
    first = slimmer.slim(EXAMPLE, f"oci:{dest}:a", cache=cache)
    true_size = first.images[0].layers[0].size_after
    with sqlite3.connect(path) as db:
        db.execute("UPDATE results SET size = size + 1")          # another size
    again = slimmer.slim(EXAMPLE, f"oci:{dest}:b", cache=cache)
    assert [ly.cached for ly in again.images[0].layers] == [False]
    assert again.digest == first.digest
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT size FROM results").fetchall() == [(true_size,)]
    with sqlite3.connect(path) as db:                              # a blob nobody has
        db.execute("UPDATE results SET digest = ?", ("sha256:" + "0" * 64,))
    third = slimmer.slim(EXAMPLE, f"oci:{dest}:c", cache=cache)
    assert [ly.cached for ly in third.images[0].layers] == [False]
    assert third.digest == first.digest
    assert slimmer.slim(EXAMPLE, f"oci:{dest}:d", cache=cache).images[0].layers[0].cached


def test_levels_up_to_22_are_recorded(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    write_layout(tiny, [tagged(make_image(tiny, [{"etc/a": b"a" * 4000}]), "1")])
    for level in (19, 22):
        report = slimmer.slim(f"oci:{tiny}:1", f"oci:{tmp_path / str(level)}:v",
                              SlimOptions(level=level), cache=False)
        assert [ly.level for ly in report.images[0].layers] == [level]
    with pytest.raises(slimmer.errors.UsageError, match="1..22"):  # type: ignore[attr-defined]
        slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'x'}:v", SlimOptions(level=23))
    keep = slimmer.slim(EXAMPLE, f"oci:{tmp_path / 'k'}:v",
                        SlimOptions(profiles=("none",), merge="none", compression="keep"))
    assert {ly.level for ly in keep.images[0].layers} == {None}    # passed through


def test_ultra_levels_build_one_layer_at_a_time_with_few_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import slimmer.build.reuse as reuse

    from support.memimage import MemSink

    running, peak, lock = [0], [0], threading.Lock()
    all_in = threading.Event()
    threads: set[object] = set()

    def fake_build(out: OutputLayer, *args: object, **kw: object) -> LayerResult:
        threads.add(kw["threads"])
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == 4:
                all_in.set()
        all_in.wait(0.3)             # unbounded builds all get here together
        with lock:
            running[0] -= 1
        return result(1)

    monkeypatch.setattr(reuse, "build_layer", fake_build)
    builder = reuse.LayerBuilder(MemSink(), None)
    layers = MemSource([make_tar([("file", "a", b"1")])]).image.layers
    for level, compression, want, workers in ((22, ZSTD, 1, 2), (19, ZSTD, 4, 16),
                                              (22, GZIP, 4, 16)):
        peak[0] = 0
        all_in.clear()
        threads.clear()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: builder(OutputLayer((0,), REBUILD, compression, 1, 1),
                                            layers, MemSink(), level=level, threads=16),
                          range(4)))
        assert (peak[0], threads) == (want, {workers}), (level, compression)
