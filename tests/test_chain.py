"""The hash chain catches any edit made to the store behind the log's back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mcp_server.tasks.chain import verify_chain
from mcp_server.tasks.model import TaskState
from mcp_server.tasks.sqlite_store import SqliteTaskStore
from tests.helpers.store_writer import ACTOR, new_task


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def store(db: Path) -> SqliteTaskStore:
    return SqliteTaskStore(db)


@pytest.fixture
def task_id(store: SqliteTaskStore) -> str:
    task = store.create(new_task(), actor=ACTOR, payload={"request": "add a flag"})
    store.record(task.id, actor=ACTOR, action="plan", payload={"step": 1}, to_state=TaskState.PLANNING)
    store.record(task.id, actor=ACTOR, action="note", payload={"text": "looked around"})
    store.record(task.id, actor=ACTOR, action="propose", payload={"plan": "x"}, to_state=TaskState.PLAN_REVIEW)
    return task.id


def _edit_event(db: Path, task_id: str, seq: int, **changes: object) -> None:
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM events WHERE task_id=? AND seq=?", (task_id, seq)).fetchone()
        event = json.loads(data) | changes
        conn.execute("UPDATE events SET data=? WHERE task_id=? AND seq=?", (json.dumps(event), task_id, seq))


def _report(store: SqliteTaskStore, task_id: str):  # type: ignore[no-untyped-def]
    return verify_chain(store.get(task_id), store.events(task_id))


def test_an_untouched_log_verifies(store: SqliteTaskStore, task_id: str) -> None:
    report = _report(store, task_id)
    assert report.ok and report.events_checked == 4


def test_an_edited_payload_is_caught_at_its_event(store: SqliteTaskStore, db: Path, task_id: str) -> None:
    _edit_event(db, task_id, 2, payload={"step": 2})
    report = _report(store, task_id)
    assert not report.ok and report.bad_seq == 2 and "payload" in (report.problem or "")


def test_an_edited_payload_with_a_recomputed_payload_hash_is_still_caught(
    store: SqliteTaskStore, db: Path, task_id: str
) -> None:
    from mcp_server.tasks.chain import canonical_json, sha256_hex

    forged = {"step": 99}
    _edit_event(db, task_id, 2, payload=forged, payload_sha256=sha256_hex(canonical_json(forged)))
    report = _report(store, task_id)
    assert not report.ok and report.bad_seq == 2


def test_a_rewritten_actor_is_caught(store: SqliteTaskStore, db: Path, task_id: str) -> None:
    _edit_event(db, task_id, 3, actor="human:mallory")
    assert _report(store, task_id).bad_seq == 3


def test_a_deleted_event_is_caught(store: SqliteTaskStore, db: Path, task_id: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE task_id=? AND seq=2", (task_id,))
    report = _report(store, task_id)
    assert not report.ok and "missing" in (report.problem or "")


def test_a_state_changed_behind_the_logs_back_is_caught(store: SqliteTaskStore, db: Path, task_id: str) -> None:
    with sqlite3.connect(db) as conn:
        (data,) = conn.execute("SELECT data FROM tasks WHERE id=?", (task_id,)).fetchone()
        forged = json.loads(data) | {"state": "approved"}
        conn.execute("UPDATE tasks SET data=?, state='approved' WHERE id=?", (json.dumps(forged), task_id))
    report = _report(store, task_id)
    assert not report.ok and "approved" in (report.problem or "")


def test_a_dropped_newest_event_is_caught(store: SqliteTaskStore, db: Path, task_id: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM events WHERE task_id=? AND seq=4", (task_id,))
    assert not _report(store, task_id).ok
