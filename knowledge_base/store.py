"""The code index on disk: one SQLite file with FTS5, keyed by git blob SHA.

Content tables (blobs, chunks, their FTS rows, symbols) are keyed by blob, so a file that did
not change between two commits is never read again, and two paths with the same content are
indexed once. `files` maps the indexed commit's paths to blobs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = "1"
_META = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, lang TEXT, size INTEGER NOT NULL, skipped TEXT);
CREATE INDEX IF NOT EXISTS files_blob ON files(blob);
CREATE TABLE IF NOT EXISTS blobs(blob TEXT PRIMARY KEY, lines INTEGER NOT NULL, skipped TEXT);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY, blob TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    symbol TEXT, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_blob ON chunks(blob);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize="unicode61 tokenchars '_'");
CREATE VIRTUAL TABLE IF NOT EXISTS blobs_fts USING fts5(tokens, tokenize="unicode61 tokenchars '_'");
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TABLE IF NOT EXISTS symbols(
    blob TEXT NOT NULL, name TEXT NOT NULL, lname TEXT NOT NULL, kind TEXT NOT NULL, line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, is_def INTEGER NOT NULL, parent TEXT);
CREATE INDEX IF NOT EXISTS symbols_lname ON symbols(lname, is_def);
CREATE INDEX IF NOT EXISTS symbols_blob ON symbols(blob);
"""


class IndexDatabase:
    """Connections to one index file. One connection per call keeps it usable from threads."""

    def __init__(self, path: Path, extra_schema: str | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._stale_schema():
            # The index is derived data: a file from another Shipway version is rebuilt, not migrated.
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        with self.read() as db:
            # executescript commits first, so the schema is its own BEGIN ... COMMIT script.
            schema = _META + (_SCHEMA if extra_schema is None else extra_schema)
            db.executescript("BEGIN IMMEDIATE; " + schema + " COMMIT;")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def _stale_schema(self) -> bool:
        if not self.path.exists():
            return False
        try:
            with self.read() as db:
                row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError:
            return True
        return row is not None and row[0] != SCHEMA_VERSION

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # an index can be rebuilt; the task log can't
        return db

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def get_meta(self, key: str) -> str | None:
        with self.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])
