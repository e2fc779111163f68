"""The TaskStore contract, on every backend: SQLite (file and memory) and DynamoDB (a real moto server).

Atomic transitions, a linear chain under concurrent writer processes, nothing torn by SIGKILL.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcp_server.errors import InvalidTransition, TaskNotFound
from mcp_server.tasks.base import TaskStore
from mcp_server.tasks.chain import verify_chain
from mcp_server.tasks.dynamo_store import DynamoTaskStore
from mcp_server.tasks.model import TaskState
from mcp_server.tasks.sqlite_store import SqliteTaskStore
from tests.conftest import REPO_ROOT
from tests.helpers.store_writer import ACTOR, new_task


@pytest.fixture(params=["file", "memory", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TaskStore:
    made: TaskStore
    if request.param == "dynamodb":
        made = DynamoTaskStore("contract", endpoint_url=request.getfixturevalue("aws"))
        assert made.create_tables() == ["contract-tasks", "contract-events"]
    else:
        made = SqliteTaskStore(tmp_path / "tasks.db") if request.param == "file" else SqliteTaskStore.in_memory()
    request.addfinalizer(made.close)
    return made


@pytest.fixture(params=["sqlite", "dynamodb"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, TaskStore]:
    """(what store_writer is given, the store itself) for tests with writer processes."""
    if request.param == "sqlite":
        return str(tmp_path / "tasks.db"), SqliteTaskStore(tmp_path / "tasks.db")
    endpoint = request.getfixturevalue("aws")
    store = DynamoTaskStore("writers", endpoint_url=endpoint)
    store.create_tables()
    return f"dynamodb:writers@{endpoint}", store


def _writer(db: Path | str, target: str, count: int, *, capture: bool = True) -> subprocess.Popen[str]:
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.store_writer", str(db), target, str(count)],
        cwd=REPO_ROOT, stdout=output, stderr=output, text=True,
    )  # fmt: skip


def test_a_new_task_starts_requested_with_one_verified_event(store: TaskStore) -> None:
    task = store.create(new_task(), actor=ACTOR, payload={"request": "r"})
    assert (task.state, task.version) == (TaskState.REQUESTED, 1)
    events = store.events(task.id)
    assert [(e.seq, e.action, e.from_state, e.to_state) for e in events] == [(1, "created", None, "requested")]
    assert verify_chain(store.get(task.id), events).ok


def test_record_moves_the_task_and_extends_the_chain(store: TaskStore) -> None:
    task = store.create(new_task(), actor=ACTOR, payload={})
    moved, event = store.record(task.id, actor=ACTOR, action="plan", payload={"a": 1}, to_state=TaskState.PLANNING)
    assert moved.state == TaskState.PLANNING and moved.version == 2
    assert event.prev_sha256 == task.head_sha256 and moved.head_sha256 == event.sha256
    noted, note = store.record(task.id, actor=ACTOR, action="note", payload={})
    assert noted.state == TaskState.PLANNING and (note.from_state, note.to_state) == ("planning", "planning")
    assert verify_chain(store.get(task.id), store.events(task.id)).ok


def test_an_illegal_transition_changes_nothing(store: TaskStore) -> None:
    task = store.create(new_task(), actor=ACTOR, payload={})
    with pytest.raises(InvalidTransition):
        store.record(task.id, actor=ACTOR, action="merge", payload={}, to_state=TaskState.MERGED)
    assert store.get(task.id) == task
    assert len(store.events(task.id)) == 1


def test_unknown_task_is_reported_not_created(store: TaskStore) -> None:
    with pytest.raises(TaskNotFound, match="no task"):
        store.record("feedfeedfeed", actor=ACTOR, action="note", payload={})
    assert store.all_ids() == []


def test_list_pages_newest_first_and_filters_by_state(store: TaskStore) -> None:
    ids = [store.create(new_task(), actor=ACTOR, payload={}).id for _ in range(5)]
    store.record(ids[0], actor=ACTOR, action="plan", payload={}, to_state=TaskState.PLANNING)
    page, total = store.page(limit=2, offset=0)
    assert total == 5 and [t.id for t in page] == ids[::-1][:2]
    rest, _ = store.page(limit=10, offset=2)
    assert [t.id for t in rest] == ids[::-1][2:]
    planning, count = store.page(state=TaskState.PLANNING)
    assert count == 1 and [t.id for t in planning] == [ids[0]]


def test_prefix_lookup_finds_every_id_with_that_prefix(store: TaskStore) -> None:
    for suffix in ("01", "02"):
        store.create(new_task().model_copy(update={"id": f"abcdef0000{suffix}"}), actor=ACTOR, payload={})
    assert store.ids_with_prefix("abcdef") == ["abcdef000001", "abcdef000002"]
    assert store.ids_with_prefix("abcdef000002") == ["abcdef000002"]


@pytest.mark.slow
def test_concurrent_writer_processes_keep_one_linear_chain(shared_db: tuple[str, TaskStore]) -> None:
    db, store = shared_db
    shared = store.create(new_task(), actor=ACTOR, payload={})
    writers = [_writer(db, shared.id, 40) for _ in range(4)] + [_writer(db, "new", 15) for _ in range(2)]
    for proc in writers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    events = store.events(shared.id)
    assert [e.seq for e in events] == list(range(1, 4 * 40 + 2))
    assert len({e.payload["pid"] for e in events[1:]}) == 4
    reports = [verify_chain(store.get(i), store.events(i)) for i in store.all_ids()]
    assert len(reports) == 1 + 2 * 15 and all(r.ok for r in reports), [r for r in reports if not r.ok]


@pytest.mark.slow
def test_writers_killed_with_sigkill_mid_write_leave_no_torn_task_or_broken_chain(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    store = SqliteTaskStore(db)
    shared = store.create(new_task(), actor=ACTOR, payload={})
    rng = random.Random(7)
    targets = [shared.id, "new", "new"]
    writers = [_writer(db, target, 1_000_000, capture=False) for target in targets]
    deadline = time.monotonic() + 30  # the churn starts once the writers write (start-up is slow on a busy machine)
    while len(store.events(shared.id)) < 2 or len(store.all_ids()) < 2:
        assert time.monotonic() < deadline, "the writers never started writing"
        time.sleep(0.05)
    # Churn: every few milliseconds one writer dies mid-stream and a fresh one takes its place.
    for _ in range(100):
        time.sleep(rng.uniform(0.02, 0.08))
        victim = rng.randrange(len(writers))
        os.kill(writers[victim].pid, signal.SIGKILL)
        assert writers[victim].wait(timeout=10) == -signal.SIGKILL
        writers[victim] = _writer(db, targets[victim], 1_000_000, capture=False)
    for proc in writers:
        proc.kill()
        proc.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = conn.execute("SELECT COUNT(*) FROM events WHERE task_id NOT IN (SELECT id FROM tasks)")
        assert orphans.fetchone() == (0,)
    ids = store.all_ids()
    assert len(ids) > 1 and len(store.events(shared.id)) > 1, "the writers never got to write"
    for task_id in ids:
        report = verify_chain(store.get(task_id), store.events(task_id))
        assert report.ok, report
