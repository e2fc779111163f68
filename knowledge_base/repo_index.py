"""`RepoIndex`: the code index of one repository, kept current and searched by signal fusion."""

from __future__ import annotations

import fnmatch
import sqlite3
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from knowledge_base.errors import InvalidQuery
from knowledge_base.indexer import IndexStats, index_lock, update_index
from knowledge_base.query import Query, parse_query
from knowledge_base.ranking import RankedFile, Weights, fuse
from knowledge_base.signals import (
    ChunkHit,
    Evidence,
    files_from_chunks,
    lexical_chunks,
    lexical_expression,
    lexical_files,
    path_mentions,
    select_in,
    symbol_definitions,
)
from knowledge_base.source import TreeSource
from knowledge_base.store import IndexDatabase

SearchKind = Literal["hybrid", "lexical", "symbol", "semantic"]
KINDS: tuple[str, ...] = ("hybrid", "lexical", "symbol", "semantic")
MAX_K = 100
SNIPPET_LINES = 12
SNIPPET_CHARS = 1_200


class VectorIndex(Protocol):
    """Semantic search over the index's chunks (`semantic.py`)."""

    def unavailable_reason(self) -> str | None: ...

    def is_built(self) -> bool: ...

    def sync(self, db: IndexDatabase) -> int: ...

    def query(self, text: str, limit: int) -> list[tuple[int, float]]: ...


@dataclass(frozen=True)
class Hit:
    path: str
    start_line: int
    end_line: int
    snippet: str
    score: float
    signals: list[str]


@dataclass
class SearchResult:
    commit: str
    hits: list[Hit]
    files: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """The indexed commit's files, loaded once per commit."""

    commit: str
    paths_of: dict[str, list[str]]  # blob -> paths of indexed files
    blob_of: dict[str, str]  # indexed path -> blob
    all_blobs: dict[str, str]  # every regular file's path -> blob, skipped ones included


class RepoIndex:
    def __init__(
        self, directory: Path, source: TreeSource, vectors: VectorIndex | None = None, weights: Weights | None = None
    ) -> None:
        self.directory = directory
        self.source = source
        self.vectors = vectors
        self.weights = weights or Weights()
        self.db = IndexDatabase(directory / "code.db")
        self._snapshot: Snapshot | None = None
        self._guard = threading.Lock()

    # ------------------------------------------------------------------ keeping current
    def update(self, semantic: bool | None = None) -> IndexStats:
        """Index the source's head commit incrementally.

        `semantic`: True builds or syncs the vectors, False leaves them, None (the default on a
        query) syncs them only once they have been built.
        """
        with index_lock(self.directory):
            stats = update_index(self.db, self.source)
            vectors = self.vectors
            wanted = semantic or (semantic is None and vectors is not None and vectors.is_built())
            if vectors is not None and vectors.unavailable_reason() is None and wanted:
                vectors.sync(self.db)
        with self._guard:
            self._snapshot = None
        return stats

    def ensure_current(self) -> Snapshot:
        head = self.source.head()
        if head is None or head != self.db.get_meta("commit"):
            self.update()
        with self._guard:
            if self._snapshot is None:
                self._snapshot = self._load_snapshot()
            return self._snapshot

    def _load_snapshot(self) -> Snapshot:
        with self.db.read() as conn:
            commit = conn.execute("SELECT value FROM meta WHERE key = 'commit'").fetchone()[0]
            rows = conn.execute("SELECT path, blob, skipped FROM files").fetchall()
        paths_of: dict[str, list[str]] = defaultdict(list)
        for path, blob, skipped in rows:
            if skipped is None:
                paths_of[blob].append(path)
        indexed = {path: blob for path, blob, skipped in rows if skipped is None}
        return Snapshot(str(commit), dict(paths_of), indexed, {path: blob for path, blob, _ in rows})

    # ------------------------------------------------------------------ searching
    def search(self, text: str, k: int = 10, kind: str = "hybrid", path_glob: str | None = None) -> SearchResult:
        if kind not in KINDS:
            raise InvalidQuery(f"unknown search kind {kind!r}: use one of {', '.join(KINDS)}")
        if not 1 <= k <= MAX_K:
            raise InvalidQuery(f"k must be between 1 and {MAX_K}, got {k}")
        query = parse_query(text)
        snapshot = self.ensure_current()
        allowed = _glob_filter(path_glob, list(snapshot.blob_of))
        notes = [f"query truncated to its first {len(query.text):,} characters"] if query.truncated else []
        with self.db.read() as conn:
            ranked, evidence, chunks = self._rank(conn, query, kind, snapshot, allowed, notes)
            hits = self._hits(conn, ranked[:k], evidence, chunks, snapshot)
        return SearchResult(snapshot.commit, hits, [f.path for f in ranked], notes)

    def _rank(
        self, conn: sqlite3.Connection, query: Query, kind: str, snapshot: Snapshot, allowed: set[str] | None,
        notes: list[str],
    ) -> tuple[list[RankedFile], dict[str, Evidence], dict[str, list[ChunkHit]]]:  # fmt: skip
        per_signal: dict[str, dict[str, float]] = {}
        evidence: dict[str, Evidence] = {}
        chunks: dict[str, list[ChunkHit]] = {}
        expression = lexical_expression(conn, query) if kind in ("hybrid", "lexical") else None
        if expression is not None:
            chunks["lexical"] = lexical_chunks(conn, expression)
            per_signal["lexical"] = files_from_chunks(chunks["lexical"], snapshot.paths_of)
            per_signal["file"] = lexical_files(conn, expression, snapshot.paths_of)
        if kind in ("hybrid", "symbol"):
            evidence["symbol"] = symbol_definitions(conn, query, snapshot.paths_of, len(snapshot.blob_of))
            per_signal["symbol"] = evidence["symbol"].scores
        if kind == "hybrid":
            evidence["path"] = path_mentions(query, list(snapshot.blob_of))
            per_signal["path"] = evidence["path"].scores
        if kind in ("hybrid", "semantic"):
            semantic = self._semantic_chunks(conn, query, notes, required=kind == "semantic")
            if semantic is not None:
                chunks["semantic"] = semantic
                per_signal["semantic"] = files_from_chunks(semantic, snapshot.paths_of)
        if allowed is not None:
            per_signal = {s: {p: v for p, v in scores.items() if p in allowed} for s, scores in per_signal.items()}
        return fuse(per_signal, self.weights, query.wants_tests, query.wants_docs), evidence, chunks

    def _semantic_chunks(
        self, conn: sqlite3.Connection, query: Query, notes: list[str], required: bool
    ) -> list[ChunkHit] | None:
        reason = "no embedder is configured" if self.vectors is None else self.vectors.unavailable_reason()
        if reason is None and self.vectors is not None and not self.vectors.is_built():
            reason = "the semantic index is not built yet: run `shipway index`"
        if reason is not None:
            if required:
                raise InvalidQuery(f"semantic search is unavailable: {reason}; use kind=hybrid or lexical")
            notes.append(f"semantic search unavailable ({reason}); ranked with lexical, symbol and path signals")
            return None
        assert self.vectors is not None
        found = self.vectors.query(query.text, 200)
        blobs = dict(_chunk_blobs(conn, [cid for cid, _ in found]))
        return [ChunkHit(cid, blobs[cid], score) for cid, score in found if cid in blobs]

    def _hits(
        self, conn: sqlite3.Connection, ranked: list[RankedFile], evidence: dict[str, Evidence],
        chunks: dict[str, list[ChunkHit]], snapshot: Snapshot,
    ) -> list[Hit]:  # fmt: skip
        best_chunk: dict[str, int] = {}
        for signal in ("lexical", "semantic"):
            for hit in chunks.get(signal, []):
                best_chunk.setdefault(hit.blob, hit.chunk_id)
        hits = []
        for entry in ranked:
            blob = snapshot.blob_of[entry.path]
            line = next((e.lines[entry.path] for e in evidence.values() if entry.path in e.lines), None)
            row = _chunk_row(conn, blob, line, best_chunk.get(blob))
            reasons = [f"{signal} #{rank}" for signal, rank in sorted(entry.signals.items(), key=lambda i: i[1])]
            reasons += [e.labels[entry.path] for e in evidence.values() if entry.path in e.labels]
            start, end, text = row if row else (1, 1, "")
            hits.append(Hit(entry.path, start, end, _snippet(text), round(entry.score, 6), reasons))
        return hits


def _glob_filter(path_glob: str | None, paths: list[str]) -> set[str] | None:
    if not path_glob:
        return None
    allowed = {p for p in paths if fnmatch.fnmatchcase(p, path_glob)}
    if not allowed:
        raise InvalidQuery(
            f"path_glob {path_glob!r} matches none of the {len(paths):,} indexed files "
            "(globs are matched against repo-relative paths; '*' also crosses '/', e.g. 'src/*.py')"
        )
    return allowed


def _chunk_blobs(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[int, str]]:
    rows = select_in(conn, "SELECT id, blob FROM chunks WHERE id IN ({marks})", ids)
    return [(int(i), str(b)) for i, b in rows]


def _chunk_row(
    conn: sqlite3.Connection, blob: str, line: int | None, chunk_id: int | None
) -> tuple[int, int, str] | None:
    if line is not None:
        row = conn.execute(
            "SELECT start_line, end_line, text FROM chunks WHERE blob = ? AND start_line <= ? ORDER BY start_line DESC",
            (blob, line),
        ).fetchone()
    elif chunk_id is not None:
        row = conn.execute("SELECT start_line, end_line, text FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
    else:
        row = conn.execute(
            "SELECT start_line, end_line, text FROM chunks WHERE blob = ? ORDER BY start_line", (blob,)
        ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]))


def _snippet(text: str) -> str:
    lines = text.splitlines()
    snippet = "\n".join(lines[:SNIPPET_LINES])[:SNIPPET_CHARS]
    return snippet + ("\n…" if len(lines) > SNIPPET_LINES or len(snippet) == SNIPPET_CHARS else "")
