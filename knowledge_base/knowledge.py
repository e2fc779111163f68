"""Knowledge documents: the repository's prose (README, docs, ADRs) plus entries added later
(summaries of merged PRs, decisions), searchable with their source links.

Repository documents are split at headings and keyed by blob, like the code index, so they
follow the tree as it changes. Added entries are kept until deleted. All of it is data, never
instructions: an entry can be written by an agent, so callers show it as quoted content.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from knowledge_base.chunking import chunk_lines, heading_lines
from knowledge_base.errors import InvalidQuery
from knowledge_base.filters import DOC_LANGUAGES, decode, language_of, skip_reason_for_content
from knowledge_base.query import fts_expression, parse_query
from knowledge_base.signals import document_frequencies_in
from knowledge_base.source import TreeSource
from knowledge_base.store import IndexDatabase
from knowledge_base.tokens import tokens

MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 20_000
MAX_SOURCE_CHARS = 500
_DOC_DIRS = frozenset({"doc", "docs", "documentation", "adr", "adrs", "decisions", "rfcs"})
_ROOT_DOCS = re.compile(r"^(readme|contributing|architecture|design|security|changelog|history)\b", re.IGNORECASE)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(
    id INTEGER PRIMARY KEY, origin TEXT NOT NULL, blob TEXT, title TEXT NOT NULL, source TEXT NOT NULL,
    text TEXT NOT NULL, start_line INTEGER, end_line INTEGER, added_by TEXT, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_blob ON entries(blob);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(title, body, tokenize="unicode61 tokenchars '_'");
CREATE VIRTUAL TABLE IF NOT EXISTS entries_vocab USING fts5vocab(entries_fts, 'row');
"""


@dataclass(frozen=True)
class KnowledgeHit:
    id: int
    title: str
    source: str  # repo path with line range, or the link given when the entry was added
    origin: str  # "repo" or "added"
    snippet: str
    score: float


def is_knowledge_path(path: str) -> bool:
    pure = PurePosixPath(path)
    if language_of(path) not in DOC_LANGUAGES:
        return False
    if len(pure.parts) == 1:
        return bool(_ROOT_DOCS.match(pure.name))
    return any(part.lower() in _DOC_DIRS for part in pure.parts[:-1])


class KnowledgeBase:
    def __init__(self, directory: Path) -> None:
        self.db = IndexDatabase(directory / "knowledge.db", extra_schema=_SCHEMA)

    def sync(self, source: TreeSource, commit: str) -> int:
        """Follow the repository's documents at `commit`; returns how many sections were added."""
        wanted = {e.blob: e.path for e in source.entries(commit) if is_knowledge_path(e.path)}
        with self.db.read() as conn:
            known = {row[0] for row in conn.execute("SELECT DISTINCT blob FROM entries WHERE origin = 'repo'")}
        sections: list[_Section] = []
        for blob, data in source.read_blobs([b for b in wanted if b not in known]):
            if skip_reason_for_content(data) is None:
                sections += _sections(wanted[blob], blob, decode(data))
        with self.db.write() as conn:
            for blob in known - wanted.keys():
                _delete_where(conn, "origin = 'repo' AND blob = ?", (blob,))
            for section in sections:
                _insert(conn, *section)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('commit', ?)", (commit,))
        return len(sections)

    def synced_commit(self) -> str | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'commit'").fetchone()
        return None if row is None else str(row[0])

    def add(self, title: str, text: str, source: str, added_by: str) -> int:
        title, text, source = title.strip(), text.strip(), source.strip()
        for name, value, limit in (("title", title, MAX_TITLE_CHARS), ("text", text, MAX_TEXT_CHARS),
                                   ("source", source, MAX_SOURCE_CHARS)):  # fmt: skip
            if not value:
                raise InvalidQuery(f"{name} is empty: give the entry a {name}")
            if len(value) > limit:
                raise InvalidQuery(f"{name} is {len(value):,} characters; the limit is {limit:,}: shorten it")
        with self.db.write() as conn:
            return _insert(conn, "added", None, title, source, text, None, None, added_by)

    def search(self, text: str, k: int) -> list[KnowledgeHit]:
        query = parse_query(text)
        with self.db.read() as conn:
            frequencies = document_frequencies_in(conn, "entries_vocab", list(query.terms))
            expression = fts_expression(query.terms, frequencies)
            if expression is None:
                return []
            rows = conn.execute(
                "SELECT e.id, e.title, e.source, e.origin, e.text, -bm25(entries_fts, 3.0, 1.0) FROM entries_fts "
                "JOIN entries e ON e.id = entries_fts.rowid WHERE entries_fts MATCH ? ORDER BY rank LIMIT ?",
                (expression, k),
            ).fetchall()
        return [
            KnowledgeHit(int(i), str(t), str(s), str(o), _snippet(str(body)), round(float(score), 6))
            for i, t, s, o, body, score in rows
        ]


_Section = tuple[str, str | None, str, str, str, int | None, int | None, str]


def _sections(path: str, blob: str, text: str) -> list[_Section]:
    lines = text.splitlines(keepends=True)
    found: list[_Section] = []
    for chunk in chunk_lines(lines, dict.fromkeys(heading_lines(lines))):
        first = next((line.strip("#=-~^ \n") for line in chunk.text.splitlines() if line.strip("#=-~^ \n")), "")
        title = f"{path}: {first}"[:MAX_TITLE_CHARS]
        source = f"{path}#L{chunk.start_line}-L{chunk.end_line}"
        found.append(("repo", blob, title, source, chunk.text, chunk.start_line, chunk.end_line, "repository"))
    return found


def _insert(
    conn: sqlite3.Connection, origin: str, blob: str | None, title: str, source: str, text: str,
    start: int | None, end: int | None, added_by: str,
) -> int:  # fmt: skip
    cursor = conn.execute(
        "INSERT INTO entries(origin, blob, title, source, text, start_line, end_line, added_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (origin, blob, title, source, text, start, end, added_by, time.time()),
    )
    entry_id = int(cursor.lastrowid or 0)
    conn.execute(
        "INSERT INTO entries_fts(rowid, title, body) VALUES (?, ?, ?)",
        (entry_id, " ".join(tokens(title)), " ".join(tokens(text))),
    )
    return entry_id


def _delete_where(conn: sqlite3.Connection, where: str, params: tuple[str, ...]) -> None:
    conn.execute(f"DELETE FROM entries_fts WHERE rowid IN (SELECT id FROM entries WHERE {where})", params)  # noqa: S608
    conn.execute(f"DELETE FROM entries WHERE {where}", params)  # noqa: S608


def _snippet(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " …"
