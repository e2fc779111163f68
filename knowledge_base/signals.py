"""Per-file evidence for a query, one function per signal; `ranking.py` fuses them.

Each signal returns {path: strength} (higher is better) and, where it has one, the line of the
evidence, so a hit can say *why* it matched.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from knowledge_base.query import Query, fts_expression

LEXICAL_CHUNK_LIMIT = 2_000
_IN_BATCH = 500  # well under SQLite's limit on bound parameters
_GENERIC_SYMBOL_FILES = 25  # a name defined in more files than this tells nothing


@dataclass
class Evidence:
    scores: dict[str, float] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # path -> line of the evidence
    labels: dict[str, str] = field(default_factory=dict)  # path -> what matched, e.g. "defines parse_config"
    _best: dict[str, float] = field(default_factory=dict)

    def add(self, path: str, score: float, line: int | None = None, label: str | None = None) -> None:
        """Add `score` to the file; the strongest single piece of evidence names the line and label."""
        if score > self._best.get(path, 0.0):
            self._best[path] = score
            if line is not None:
                self.lines[path] = line
            if label is not None:
                self.labels[path] = label
        self.scores[path] = self.scores.get(path, 0.0) + score


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: int
    blob: str
    score: float


def select_in(conn: sqlite3.Connection, sql: str, values: Sequence[object]) -> list[tuple[Any, ...]]:
    """Rows of `sql`, whose one `{marks}` is an IN list, over `values` in batches SQLite accepts."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), _IN_BATCH):
        batch = values[start : start + _IN_BATCH]
        rows += conn.execute(sql.format(marks=",".join("?" * len(batch))), batch).fetchall()
    return rows


def document_frequencies_in(conn: sqlite3.Connection, vocab_table: str, terms: list[str]) -> dict[str, int]:
    """How many rows of an FTS5 table contain each term (from its fts5vocab table)."""
    sql = f"SELECT term, doc FROM {vocab_table} WHERE term IN ({{marks}})"  # noqa: S608
    return {str(term): int(docs) for term, docs in select_in(conn, sql, terms)}


def lexical_expression(conn: sqlite3.Connection, query: Query) -> str | None:
    """The FTS5 query both lexical views run: the query's rarest indexed terms."""
    return fts_expression(query.terms, document_frequencies_in(conn, "chunks_vocab", list(query.terms)))


def lexical_chunks(conn: sqlite3.Connection, expression: str) -> list[ChunkHit]:
    rows = conn.execute(
        "SELECT c.id, c.blob, -bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
        "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?",
        (expression, LEXICAL_CHUNK_LIMIT),
    ).fetchall()
    return [ChunkHit(int(cid), str(blob), float(score)) for cid, blob, score in rows]


def files_from_chunks(hits: list[ChunkHit], paths_of: dict[str, list[str]]) -> dict[str, float]:
    """File strength from its chunks: the sum of its three best.

    One strong chunk is the usual shape of a hit; a file with several is more likely the one.
    Summing all chunks would favour long files, and the best alone ignores that evidence.
    """
    per_file: dict[str, list[float]] = defaultdict(list)
    for hit in hits:
        for path in paths_of.get(hit.blob, ()):
            per_file[path].append(hit.score)
    return {path: sum(sorted(s, reverse=True)[:3]) for path, s in per_file.items()}


def symbol_definitions(conn: sqlite3.Connection, query: Query, paths_of: dict[str, list[str]], total: int) -> Evidence:
    """Files that define a name the query mentions, weighted by how rare the name is."""
    evidence = Evidence()
    names = sorted({w.lower() for w in query.words})
    rows = select_in(conn, "SELECT lname, name, blob, line FROM symbols WHERE is_def = 1 AND lname IN ({marks})", names)
    blobs_by_name: dict[str, set[str]] = defaultdict(set)
    for lname, _name, blob, _line in rows:
        blobs_by_name[lname].add(blob)
    codeish = {w.lower() for w in query.identifiers}
    seen: set[tuple[str, str]] = set()
    for lname, name, blob, line in rows:
        if (lname, blob) in seen:
            continue
        seen.add((lname, blob))
        spread = len(blobs_by_name[lname])
        if spread > _GENERIC_SYMBOL_FILES:
            continue
        weight = math.log(1 + total / spread) * (2.0 if lname in codeish else 1.0)
        for path in paths_of.get(blob, ()):
            evidence.add(path, weight, line, f"defines {name}")
    return evidence


def path_mentions(query: Query, paths: list[str]) -> Evidence:
    """Files the query names: by path, by file name, as a dotted module, or in a stack trace."""
    evidence = Evidence()
    by_name: dict[str, list[str]] = defaultdict(list)
    by_stem: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        by_name[name].append(path)
        by_stem[name.split(".", 1)[0].lower()].append(path)
    for word in query.words:
        named = by_stem.get(word.lower(), [])
        if len(word) > 3 and 0 < len(named) <= 3:  # a stem shared by many files names none of them
            for path in named:
                evidence.add(path, 0.5, None, f"file named {word}")
    for mention in query.paths:
        for path in _match_suffix(mention, by_name):
            evidence.add(path, 1.0, None, f"mentioned as {mention}")
    for dotted in query.modules:
        for path in _module_files(dotted, by_name):
            evidence.add(path, 0.8, None, f"mentioned as {dotted}")
    _add_frames(evidence, query.frames, by_name)
    return evidence


def _add_frames(evidence: Evidence, frames: tuple[tuple[str, int], ...], by_name: dict[str, list[str]]) -> None:
    for position, (frame_path, line) in enumerate(frames):
        # Later frames are closer to where the error was raised.
        weight = 1.0 + position / max(1, len(frames))
        for path in _match_suffix(frame_path, by_name):
            evidence.add(path, weight, line, f"in stack trace at line {line}")


def _match_suffix(mention: str, by_name: dict[str, list[str]]) -> list[str]:
    """Repo paths that end with the mentioned path; the longest common suffix wins."""
    parts = [p for p in mention.strip("/").split("/") if p not in {"", "."}]
    if not parts:
        return []
    candidates = by_name.get(parts[-1], [])
    best: list[str] = []
    best_len = 0
    for path in candidates:
        shared = _shared_suffix(path.split("/"), parts)
        if shared > best_len:
            best, best_len = [path], shared
        elif shared == best_len:
            best.append(path)
    # A bare file name shared by many files (``__init__.py``) points nowhere in particular.
    return best if best_len > 1 or len(best) <= 3 else []


def _shared_suffix(a: list[str], b: list[str]) -> int:
    count = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        count += 1
    return count


def _module_files(dotted: str, by_name: dict[str, list[str]]) -> list[str]:
    parts = dotted.split(".")
    for end in range(len(parts), 1, -1):
        stem = "/".join(parts[:end])
        for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
            found = _match_suffix(candidate, by_name)
            if found and _shared_suffix(found[0].split("/"), candidate.split("/")) >= min(end, 2):
                return found
    return []


def lexical_files(conn: sqlite3.Connection, expression: str, paths_of: dict[str, list[str]]) -> dict[str, float]:
    """Whole-file BM25: rewards files where the query's words co-occur, even if spread out."""
    rows = conn.execute(
        "SELECT b.blob, -bm25(blobs_fts) FROM blobs_fts JOIN blobs b ON b.rowid = blobs_fts.rowid "
        "WHERE blobs_fts MATCH ? ORDER BY rank LIMIT ?",
        (expression, LEXICAL_CHUNK_LIMIT),
    ).fetchall()
    return {path: float(score) for blob, score in rows for path in paths_of.get(blob, ())}
