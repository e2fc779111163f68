"""Bring the index up to a commit, reading only blobs it has not seen before."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from knowledge_base.errors import EmptyRepository, IndexUnavailable
from knowledge_base.filters import language_of, skip_reason_for_path
from knowledge_base.parsing import ParsedFile, parse_file
from knowledge_base.source import TreeEntry, TreeSource
from knowledge_base.store import IndexDatabase

_LOCK_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class IndexStats:
    commit: str
    files: int  # files of the commit that are indexed
    skipped: int  # files left out (binary, vendored, too large, unsupported)
    new_blobs: int  # blobs read and parsed in this update
    removed_blobs: int
    seconds: float


@contextmanager
def index_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock across threads and processes for one index directory."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise IndexUnavailable(f"another process holds the index lock in {directory}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def update_index(db: IndexDatabase, source: TreeSource, commit: str | None = None) -> IndexStats:
    """Index `commit` (default: the source's head). Call with `index_lock` held."""
    started = time.monotonic()
    commit = commit or source.head()
    if commit is None:
        raise EmptyRepository("the repository has no commits yet: commit something, then search")
    entries = source.entries(commit)
    with db.read() as conn:
        known = {row[0] for row in conn.execute("SELECT blob FROM blobs")}
    wanted = {e.blob: e for e in entries if skip_reason_for_path(e.path, e.size) is None}
    parsed = {blob: parse_file(language_of(wanted[blob].path), data) for blob, data in _read_new(source, wanted, known)}
    with db.write() as conn:
        _store_blobs(conn, parsed)
        _store_files(conn, entries)
        removed = _drop_orphans(conn)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('commit', ?)", (commit,))
        indexed = int(conn.execute("SELECT COUNT(*) FROM files WHERE skipped IS NULL").fetchone()[0])
    return IndexStats(commit, indexed, len(entries) - indexed, len(parsed), removed, time.monotonic() - started)


def _read_new(source: TreeSource, wanted: dict[str, TreeEntry], known: set[str]) -> Iterator[tuple[str, bytes]]:
    new = [blob for blob in wanted if blob not in known]
    if new:
        yield from source.read_blobs(new)


def _store_blobs(conn: sqlite3.Connection, parsed: dict[str, ParsedFile]) -> None:
    for blob, result in parsed.items():
        cursor = conn.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", (blob, result.lines, result.skipped))
        conn.execute(
            "INSERT INTO blobs_fts(rowid, tokens) VALUES (?, ?)", (cursor.lastrowid, " ".join(result.chunk_tokens))
        )
        for chunk, chunk_tokens in zip(result.chunks, result.chunk_tokens, strict=True):
            cursor = conn.execute(
                "INSERT INTO chunks(blob, start_line, end_line, symbol, text) VALUES (?, ?, ?, ?, ?)",
                (blob, chunk.start_line, chunk.end_line, chunk.symbol, chunk.text),
            )
            conn.execute("INSERT INTO chunks_fts(rowid, tokens) VALUES (?, ?)", (cursor.lastrowid, chunk_tokens))
        conn.executemany(
            "INSERT INTO symbols VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (blob, s.name, s.name.lower(), s.kind, s.line, s.end_line, int(s.is_definition), s.parent)
                for s in result.symbols
            ],
        )


def _store_files(conn: sqlite3.Connection, entries: list[TreeEntry]) -> None:
    conn.execute("DELETE FROM files")
    conn.executemany(
        "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
        [(e.path, e.blob, language_of(e.path), e.size, skip_reason_for_path(e.path, e.size)) for e in entries],
    )
    # A blob skipped for its content (binary, minified) marks every path that has it.
    conn.execute(
        "UPDATE files SET skipped = (SELECT skipped FROM blobs WHERE blobs.blob = files.blob) "
        "WHERE skipped IS NULL AND blob IN (SELECT blob FROM blobs WHERE skipped IS NOT NULL)"
    )


def _drop_orphans(conn: sqlite3.Connection) -> int:
    orphans = [row[0] for row in conn.execute("SELECT blob FROM blobs WHERE blob NOT IN (SELECT blob FROM files)")]
    for blob in orphans:
        conn.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE blob = ?)", (blob,))
        conn.execute("DELETE FROM chunks WHERE blob = ?", (blob,))
        conn.execute("DELETE FROM symbols WHERE blob = ?", (blob,))
        conn.execute("DELETE FROM blobs_fts WHERE rowid IN (SELECT rowid FROM blobs WHERE blob = ?)", (blob,))
        conn.execute("DELETE FROM blobs WHERE blob = ?", (blob,))
    return len(orphans)
