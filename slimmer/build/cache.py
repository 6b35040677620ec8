"""The layer result cache: which blob a rebuilt or recompressed layer became, so a later run
that would build the same bytes can reuse the blob where it already is (like containers/image's
blob-info cache).

One SQLite file (``$XDG_CACHE_HOME/slimmer/layers.db``) that processes share (WAL journal,
short transactions, a busy timeout). ``results`` maps a layer key (see ``layer_key``) to what
the build produced; ``seen`` records where blobs were pushed (registry and repository), so a
push to another repository of the same registry can mount them. Both tables are bounded: the
least recently used rows are pruned. The cache is only ever a hint: every entry is checked at
the destination before use, and a cache that cannot be opened or written is switched off for
the run (the report says so) rather than failing it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from slimmer.codec.result import LayerResult
from slimmer.errors import InputError
from slimmer.oci.digest import check_digest, sha256_digest
from slimmer.oci.image import BlobOrigin, Layer
from slimmer.oci.media import Compression
from slimmer.oci.model import dump_json
from slimmer.options import OUTPUT_FORMAT
from slimmer.plan.model import OutputLayer

#: Rows kept in each table; beyond that the least recently used go.
DEFAULT_MAX_RESULTS = 20_000
DEFAULT_MAX_SEEN = 50_000
#: Repositories remembered per blob (the most recent ones).
SEEN_PER_BLOB = 8
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, digest TEXT NOT NULL, size INTEGER NOT NULL, diff_id TEXT NOT NULL,
    tar_size INTEGER NOT NULL, compression TEXT NOT NULL, media_type TEXT NOT NULL,
    used REAL NOT NULL);
CREATE INDEX IF NOT EXISTS results_used ON results(used);
CREATE TABLE IF NOT EXISTS seen (
    digest TEXT NOT NULL, registry TEXT NOT NULL, repository TEXT NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository));
CREATE INDEX IF NOT EXISTS seen_used ON seen(used);
"""


def default_path() -> str:
    """``$XDG_CACHE_HOME/slimmer/layers.db`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "slimmer", "layers.db")


def layer_key(out: OutputLayer, layers: Sequence[Layer], level: int, codec: str) -> str:
    """What decides a built layer's bytes, as one digest: the output format, the tars it reads
    (diff_ids of ``out.sources`` by position), the plan's recipe for it, the compression, the
    effective level and the compressor library's version (``codec``)."""
    doc = {"format": OUTPUT_FORMAT, "recipe": out.recipe_digest(),
           "tars": {str(i): layers[i].diff_id for i in out.sources},
           "compression": out.compression.value, "level": level, "codec": codec}
    return sha256_digest(dump_json(doc))


def input_hint(diff_id: str, fingerprint: str, compression: str, level: int, codec: str) -> str:
    """The key under which the result of one input layer slimmed alone is also kept: what
    a run can ask before it has a plan (whether building the layer during its scan would
    only redo a cached result)."""
    doc = {"format": OUTPUT_FORMAT, "tar": diff_id, "options": fingerprint,
           "compression": compression, "level": level, "codec": codec}
    return sha256_digest(dump_json(doc))


@dataclass(frozen=True)
class CachedLayer:
    """A cache entry: the built layer and the media type it was written with."""

    result: LayerResult
    media_type: str


class LayerCache:
    """The cache file; thread-safe (one connection behind a lock), shared between processes."""

    def __init__(self, path: str | None = None, max_results: int = DEFAULT_MAX_RESULTS,
                 max_seen: int = DEFAULT_MAX_SEEN) -> None:
        self.path = path or default_path()
        self.max_results = max_results
        self.max_seen = max_seen
        self.problem: str | None = None       # why the cache was switched off, if it was
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._off(exc)

    def _off(self, exc: BaseException) -> None:
        self.problem = f"layer cache {self.path} not used: {exc}"
        self._close_db()

    def _close_db(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                return []
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                self._off(exc)
                return []

    def _transaction(self, statements: Iterator[tuple[str, Sequence[Any]]]) -> None:
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, args in statements:
                        self._db.execute(sql, args)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._off(exc)

    # -- results ------------------------------------------------------------------------------

    def get(self, key: str) -> CachedLayer | None:
        """The entry for ``key`` (marked as used), None when there is none or it is
        malformed (then it is dropped)."""
        rows = self._run("SELECT digest, size, diff_id, tar_size, compression, media_type "
                         "FROM results WHERE key = ?", (key,))
        if not rows:
            return None
        digest, size, diff_id, tar_size, compression, media_type = rows[0]
        try:
            check_digest(digest)
            check_digest(diff_id)
            result = LayerResult(digest, int(size), diff_id, int(tar_size),
                                 Compression(compression), from_cache=True)
        except (InputError, ValueError, TypeError):
            self.drop(key)
            return None
        self._run("UPDATE results SET used = ? WHERE key = ?", (time.time(), key))
        return CachedLayer(result, str(media_type))

    def drop(self, key: str) -> None:
        """Forget an entry that turned out wrong."""
        self._run("DELETE FROM results WHERE key = ?", (key,))

    def put(self, entries: Sequence[tuple[str, LayerResult, str]],
            origin: BlobOrigin | None = None, blobs: Sequence[str] = ()) -> None:
        """Record (key, result, media type) entries, and that ``origin`` now holds their
        blobs and ``blobs``; prunes the oldest rows beyond the bounds. One transaction."""
        now = time.time()

        def statements() -> Iterator[tuple[str, Sequence[Any]]]:
            for key, res, media_type in entries:
                yield ("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (key, res.digest, res.size, res.diff_id, res.tar_size,
                        res.compression.value, media_type, now))
            if origin is not None:
                for digest in dict.fromkeys([r.digest for _, r, _ in entries] + list(blobs)):
                    yield ("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)",
                           (digest, origin.registry, origin.repository, now))
                    yield ("DELETE FROM seen WHERE digest = ? AND rowid NOT IN (SELECT rowid "
                           "FROM seen WHERE digest = ? ORDER BY used DESC LIMIT ?)",
                           (digest, digest, SEEN_PER_BLOB))
            yield ("DELETE FROM results WHERE key IN (SELECT key FROM results ORDER BY used "
                   "DESC LIMIT -1 OFFSET ?)", (self.max_results,))
            yield ("DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen ORDER BY used "
                   "DESC LIMIT -1 OFFSET ?)", (self.max_seen,))
        self._transaction(statements())

    # -- where blobs were seen ----------------------------------------------------------------

    def origins(self, digest: str, registry: str) -> tuple[BlobOrigin, ...]:
        """Repositories of ``registry`` that were pushed ``digest``, most recent first."""
        rows = self._run("SELECT registry, repository FROM seen WHERE digest = ? AND "
                         "registry = ? ORDER BY used DESC", (digest, registry))
        return tuple(BlobOrigin(str(r), str(p)) for r, p in rows)

    def forget(self, digest: str, origin: BlobOrigin) -> None:
        """``origin`` turned out not to hold ``digest`` (garbage-collected, deleted)."""
        self._run("DELETE FROM seen WHERE digest = ? AND registry = ? AND repository = ?",
                  (digest, origin.registry, origin.repository))

    def count(self) -> tuple[int, int]:
        """Rows in (results, seen): for tests and ``--verbose`` output."""
        rows = self._run("SELECT (SELECT COUNT(*) FROM results), (SELECT COUNT(*) FROM seen)")
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def close(self) -> None:
        with self._lock:
            self._close_db()


