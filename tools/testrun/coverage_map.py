"""Which tests executed which files, from a coverage.py data file recorded with test contexts.

`pytest --cov --cov-context=test` (or coverage's `dynamic_context = test_function`) records,
for every line, the tests that ran it. Read here straight from coverage's SQLite schema
(tables `file`, `context`, `line_bits`), read-only, so coverage itself need not be installed.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path, PurePosixPath

from tools.testrun.affected import is_test_file, module_names

MAX_DB_BYTES = 512 << 20


def covering_tests(data_file: Path, changed: list[str], test_files: list[str]) -> dict[str, set[str]]:
    """For each changed path, the test files whose tests executed it ({} without usable data)."""
    if not data_file.is_file() or data_file.is_symlink() or data_file.stat().st_size > MAX_DB_BYTES:
        return {}
    tests = [t for t in test_files if is_test_file(t)]
    by_module = {name: t for t in tests for name in module_names(t, set(test_files))}
    try:
        rows = _rows(data_file, changed)
    except sqlite3.Error:
        return {}  # not a coverage database, or an old schema: no coverage data then
    found: dict[str, set[str]] = defaultdict(set)
    for changed_path, context in rows:
        test = _test_of(context, set(tests), by_module)
        if test:
            found[changed_path].add(test)
    return dict(found)


def _rows(data_file: Path, changed: list[str]) -> list[tuple[str, str]]:
    connection = sqlite3.connect(f"file:{data_file}?mode=ro", uri=True)
    try:
        connection.execute("PRAGMA trusted_schema = OFF")
        connection.execute("PRAGMA query_only = ON")
        paths = connection.execute("SELECT id, path FROM file").fetchall()
        wanted = {}
        for file_id, path in paths:
            text = str(path).replace("\\", "/")
            for name in changed:
                if text == name or text.endswith("/" + name):
                    wanted[file_id] = name
        if not wanted:
            return []
        query = "SELECT DISTINCT c.context FROM line_bits l JOIN context c ON c.id = l.context_id WHERE l.file_id = ?"
        rows = ((name, connection.execute(query, (file_id,)).fetchall()) for file_id, name in wanted.items())
        return [(name, str(row[0])) for name, found in rows for row in found]
    finally:
        connection.close()


def _test_of(context: str, tests: set[str], by_module: dict[str, str]) -> str | None:
    """The test file a context names: `tests/test_x.py::test_y|run` (pytest-cov) or `tests.test_x.test_y`."""
    if not context:
        return None
    head = context.split("|", 1)[0].split("::", 1)[0]
    if head in tests:
        return head
    parts = head.split(".")
    for end in range(len(parts), 0, -1):
        found = by_module.get(".".join(parts[:end]))
        if found:
            return found
    name = PurePosixPath(head).name
    return next((t for t in tests if PurePosixPath(t).name == name), None) if name.endswith(".py") else None
