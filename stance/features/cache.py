"""A persistent, content-addressed embedding cache shared by runs and parallel jobs.

Design: one SQLite database (`embeddings.sqlite`) in WAL mode, one row per (namespace, text) keyed by
sha256(namespace + text), the vector stored as a float32 blob with its length and CRC32.

Why SQLite rather than files: a file per text is slow (a tweet's vector is 1.5 KB, a run has ~10k of them), and
sharded .npy files per encode call need their own index, locking and compaction. SQLite gives all of that: each
`put` is one atomic transaction (no half-written entry is ever visible, so no temp-file + os.replace dance), WAL lets
readers proceed while one writer commits, `busy_timeout` serialises writers from parallel Hydra jobs, and a batch
lookup of thousands of keys takes milliseconds. The length and CRC32 columns catch a damaged blob, which is then
treated as a miss and recomputed; a damaged database file is moved aside and started afresh. WAL needs a local file
system (not NFS), which the user cache dir is.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_NAME = "embeddings.sqlite"
# SQLite's host-parameter limit is 32766 in current builds; small chunks also keep each statement quick.
_CHUNK = 900
_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    key BLOB PRIMARY KEY,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    vector BLOB NOT NULL
) WITHOUT ROWID
"""
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
# SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (primary codes)
_UNWRITABLE_CODES = {3, 8, 10, 13, 14}
_UNWRITABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG}


def _unwritable(err: sqlite3.Error) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _UNWRITABLE_CODES


def cache_dir(directory: str | os.PathLike | None = None) -> Path:
    """The cache folder: `directory` if given, else $STANCE_CACHE, else the user cache dir."""
    if directory is not None:
        return Path(directory).expanduser()
    if os.environ.get("STANCE_CACHE"):
        return Path(os.environ["STANCE_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("stance"))


def text_key(namespace: str, text: str) -> bytes:
    """The content address of `text` embedded under `namespace` (model, pooling, prompt)."""
    return hashlib.sha256(f"{namespace}\x00{text}".encode()).digest()


class EmbeddingCache:
    """Float32 vectors keyed by (namespace, text) in a SQLite file; safe across processes."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = cache_dir(directory)
        self.path = self.directory / DB_NAME
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        # "write", or "read" (a read-only folder or full disk: lookups only), or "off" (unusable).
        self.mode = "write"

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork, so each process opens its own.
        if self._conn is None or self._pid != os.getpid():
            if self.mode == "read":
                conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)
                conn.execute("SELECT 1 FROM embeddings LIMIT 1")  # fails here, not in a lookup, if unreadable
            else:
                self.directory.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
                _prepare(conn)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def close(self) -> None:
        """Close this process's connection; the next call reopens it."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def _guard(self, action: Callable[[sqlite3.Connection], T], default: T, writes: bool = False) -> T:
        """Run `action(conn)`; on a damaged database file, move it aside, start afresh and return `default`.

        A cache that cannot be written (a read-only folder or file, a full disk, an I/O error) is read only, or not
        used, with one warning: new vectors then live only in the encoders' in-process memo, and nothing fails.
        """
        if self.mode == "off" or (writes and self.mode == "read"):
            return default
        try:
            return action(self._connect())
        except sqlite3.DatabaseError as err:
            damaged = getattr(err, "sqlite_errorcode", None) in _CORRUPT_CODES
            if damaged and self.mode == "write":
                self._quarantine(err)
                return default
            if not (damaged or _unwritable(err)):
                raise
            self._degrade(err)
        except OSError as err:  # creating the folder, or a full disk before SQLite saw it
            if err.errno not in _UNWRITABLE_ERRNOS:
                raise
            self._degrade(err)
        return self._guard(action, default, writes)

    def _degrade(self, err: Exception) -> None:
        """After `err` (cannot write): read-only lookups if the database is readable, else no cache; one warning."""
        self.close()
        fix = (
            f"{free_space(self.directory)} New vectors are kept in memory for this run only; point "
            "features.cache_dir or STANCE_CACHE at a writable folder with space to cache them."
        )
        if self.mode == "write" and self.path.is_file():
            self.mode = "read"
            try:
                self._connect()
            except sqlite3.Error:
                self.close()
                self.mode = "write"  # not readable either: no cache, warned below
            else:
                log.warning(
                    "Embedding cache %s cannot be written (%s): using the vectors it has. %s", self.path, err, fix
                )
                return
        if self.mode == "write":
            log.warning("Embedding cache %s cannot be used (%s). %s", self.path, err, fix)
        self.mode = "off"

    def _quarantine(self, err: Exception) -> None:
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}-{os.getpid()}")
        log.warning("Embedding cache %s is damaged (%s); moved to %s and starting afresh.", self.path, err, aside)
        self.close()
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{aside}{suffix}")

    def get(self, namespace: str, texts: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors of those `texts` that have an intact entry (misses and damaged entries are left out)."""
        by_key = {text_key(namespace, t): t for t in texts}
        keys = list(by_key)

        def lookup(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
            found: dict[str, np.ndarray] = {}
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                rows = conn.execute(
                    f"SELECT key, dim, crc, vector FROM embeddings WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, dim, crc, blob in rows:
                    if len(blob) == 4 * dim and zlib.crc32(blob) == crc:
                        found[by_key[key]] = np.frombuffer(blob, dtype=np.float32)
                    else:
                        log.warning("Embedding cache entry %s is damaged; recomputing it.", key.hex()[:12])
            return found

        return self._guard(lookup, {}) if keys else {}

    def put(self, namespace: str, model: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one vector per text in a single transaction; damaged entries with the same key are replaced."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = []
        for text, vector in zip(texts, vectors, strict=True):
            blob = vector.tobytes()
            rows.append((text_key(namespace, text), model, vector.shape[0], zlib.crc32(blob), blob))

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (a full disk does): never hide the first error behind this one.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

        if rows:
            self._guard(write, None, writes=True)

    def info(self) -> list[dict[str, object]]:
        """Entries and bytes per model identity."""
        if not self.path.exists():
            return []
        query = "SELECT model, COUNT(*), SUM(LENGTH(vector)) FROM embeddings GROUP BY model ORDER BY model"
        rows = self._guard(lambda conn: conn.execute(query).fetchall(), [])
        return [{"model": m, "entries": n, "bytes": b} for m, n, b in rows]

    def clear(self, model: str | None = None) -> int:
        """Delete the entries of models whose identity starts with `model` (all when None); returns how many."""
        if not self.path.exists():
            return 0

        def delete(conn: sqlite3.Connection) -> int:
            if model is None:
                count = conn.execute("DELETE FROM embeddings").rowcount
            else:
                # Exact identity, or a name that matches every version of it ("name@...").
                where = "model = ? OR substr(model, 1, ?) = ?"
                params = (model, len(model) + 1, f"{model}@")
                count = conn.execute(f"DELETE FROM embeddings WHERE {where}", params).rowcount
            conn.execute("VACUUM")
            return count

        return self._guard(delete, 0)


def free_space(folder: Path) -> str:
    """'N MB free in <folder>.' for the nearest existing folder, or '' if the file system cannot say."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    try:
        free = shutil.disk_usage(existing).free if existing else None
    except OSError:
        free = None
    return "" if free is None else f"{free / 1e6:.1f} MB free in {existing}."


_OPEN: dict[Path, EmbeddingCache] = {}


def open_cache(directory: str | os.PathLike | None = None) -> EmbeddingCache:
    """The process-wide cache object for a folder (one SQLite connection per folder and process)."""
    path = cache_dir(directory).resolve()
    if path not in _OPEN:
        _OPEN[path] = EmbeddingCache(path)
    return _OPEN[path]


def _prepare(conn: sqlite3.Connection, seconds: float = 120) -> None:
    """Write-ahead logging and the table, waiting while another process holds the lock they need.

    SQLite can answer "database is locked" at once, without its busy timeout, while a parallel process creates the
    same file or initialises its write-ahead log; the three statements are idempotent, so they are simply retried.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as err:
            busy = (getattr(err, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
