"""A repository with tasks waiting on the review site, and ways to read what the server recorded.

The tasks are driven in-process with the real sandbox and CI (`tests/test_review_gate.py`), the
process's handles are closed, and then `shipway serve --http` is started over the same
repository: it reads the same `.shipway/tasks.db` and `reviewers.json`. Reads here go straight to
that SQLite file, one short connection each, so they never hold anything the server needs.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path

import pytest

from mcp_server.app import STORE_FILE, ServerDeps
from mcp_server.tasks.model import Event, Task, TaskState
from mcp_server.tasks.sqlite_store import SqliteTaskStore
from tests.helpers.gitrepo import git
from tests.test_review_gate import CAROL, PLAN, edit, open_tested_pr, proposed
from tools.edits.blocks import EditBlock

SERVER_ENV = {"SHIPWAY_EMBEDDER": "none", "SHIPWAY_TEST_PYTHON": sys.executable}

# Untrusted text that must reach the page only as text.
XSS_REQUEST = "Add double() <script>alert('title')</script>\nand <img src=x onerror=alert('request')> too"
XSS_LINE = "# <script>alert(1)</script>"
ADD_DOUBLE_XSS = EditBlock(
    path="calc/arith.py",
    search="def mean",
    replace=f"{XSS_LINE}\ndef double(x: int) -> int:\n    return 2 * x\n\n\ndef mean",
)


@contextmanager
def clean_env() -> Iterator[None]:
    """What conftest's autouse fixture does per test, for module-scoped fixtures (which run before it)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("SHIPWAY_"):
                patch.delenv(name)
        patch.setenv("SHIPWAY_EMBEDDER", "none")
        yield


def task_in_review(deps: ServerDeps, request: str, *blocks: EditBlock) -> Task:
    """A task with an approved plan, the edits, a passing test run, an open PR and green CI: `review`."""
    task = proposed(deps, PLAN, request)
    assert deps.gate.approve_plan(task.id, "go ahead", CAROL).task_state == TaskState.CODING
    edit(deps, task, *blocks)
    pr = open_tested_pr(deps, task)
    assert (pr.state, pr.ci, pr.task_state) == ("open", "success", TaskState.REVIEW), pr
    return deps.tasks.get(task.id)


def read_task(repo: Path, task_id: str) -> Task:
    store = SqliteTaskStore(repo / ".shipway" / STORE_FILE)
    try:
        return store.get(task_id)
    finally:
        store.close()


def read_events(repo: Path, task_id: str) -> list[Event]:
    store = SqliteTaskStore(repo / ".shipway" / STORE_FILE)
    try:
        return store.events(task_id)
    finally:
        store.close()


def refs(repo: Path) -> str:
    """Every ref and the commit it names: a refused request must leave all of them alone."""
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def hidden(html: str, name: str) -> str:
    """The value of the first `<input type="hidden" name=NAME>` in a page."""
    match = re.search(rf'<input type="hidden" name="{re.escape(name)}" value="([^"]*)"', html)
    assert match is not None, f"no hidden input {name!r} in the page"
    return unescape(match.group(1))
