"""A ranked outline of the repository's definitions that fits a token budget.

Files rank by how much the rest of the code uses what they define: each defined name earns
log(1 + the number of other files that reference it). It is the cheap cousin of PageRank over
the reference graph and puts the modules everything leans on first. Tests, docs and examples
come last; names defined in many files (``__init__``, ``get``) earn nothing.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass

from knowledge_base.filters import is_secondary_path, is_test_path

CHARS_PER_TOKEN = 4  # close enough for code with the o200k and cl100k vocabularies
_OUTLINE_KINDS = ("class", "function", "method", "interface", "struct", "enum", "trait", "type", "module")
_GENERIC_DEFINITIONS = 25


@dataclass(frozen=True)
class RepoMap:
    text: str
    files_shown: int
    files_total: int
    truncated: bool


def build_repo_map(conn: sqlite3.Connection, paths_of: dict[str, list[str]], budget_tokens: int) -> RepoMap:
    definitions = _definitions(conn)
    scores = _file_scores(conn, definitions)
    files = sorted(
        ((path, blob) for blob, paths in paths_of.items() for path in paths if blob in definitions),
        key=lambda item: (is_test_path(item[0]) or is_secondary_path(item[0]), -scores.get(item[1], 0.0), item[0]),
    )
    budget = budget_tokens * CHARS_PER_TOKEN
    parts: list[str] = []
    used = 0
    for path, blob in files:
        block = _outline(path, definitions[blob])
        if used + len(block) > budget:
            break
        parts.append(block)
        used += len(block)
    return RepoMap("".join(parts), len(parts), len(files), len(parts) < len(files))


def _definitions(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str, int, str | None]]]:
    marks = ",".join("?" * len(_OUTLINE_KINDS))
    found: dict[str, list[tuple[str, str, int, str | None]]] = defaultdict(list)
    rows = conn.execute(
        f"SELECT blob, name, kind, line, parent FROM symbols WHERE is_def = 1 AND kind IN ({marks}) "  # noqa: S608
        "ORDER BY blob, line",
        _OUTLINE_KINDS,
    )
    for blob, name, kind, line, parent in rows:
        found[blob].append((name, kind, int(line), parent))
    return found


def _file_scores(
    conn: sqlite3.Connection, definitions: dict[str, list[tuple[str, str, int, str | None]]]
) -> dict[str, float]:
    users = dict(
        conn.execute(
            "SELECT lname, COUNT(DISTINCT blob) FROM symbols WHERE is_def = 0 AND lname IN "
            "(SELECT lname FROM symbols WHERE is_def = 1 GROUP BY lname HAVING COUNT(DISTINCT blob) <= ?) "
            "GROUP BY lname",
            (_GENERIC_DEFINITIONS,),
        ).fetchall()
    )
    return {
        blob: sum(math.log1p(users.get(name.lower(), 0)) for name, _kind, _line, _parent in defs)
        for blob, defs in definitions.items()
    }


def _outline(path: str, definitions: list[tuple[str, str, int, str | None]]) -> str:
    lines = [f"{path}\n"]
    for name, kind, line, parent in definitions:
        indent = "    " if parent else "  "
        lines.append(f"{indent}{kind} {name}  L{line}\n")
    return "".join(lines)
