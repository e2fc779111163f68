"""`SqliteTaskStore`: the embedded default store (SQLite in WAL mode).

Every write runs in one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock
before reading: the state check, the new event and the task row update see and leave one
consistent picture even with many processes writing at once. A process killed mid-write
leaves an uncommitted transaction that SQLite rolls back, so a task is never torn and a
chain never half-appended. `synchronous=FULL` makes a committed event survive power loss
too: the log is an audit trail.

Connections are opened per operation: sync tools run on worker threads and some callers
fork, and a short-lived connection is safe in both cases and costs well under a millisecond.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mcp_server.errors import StoreError, TaskNotFound
from mcp_server.tasks.chain import GENESIS_SHA256, seal_event
from mcp_server.tasks.machine import check_transition
from mcp_server.tasks.model import Event, Task, TaskState, utcnow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, created_at);
CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_at);
CREATE TABLE IF NOT EXISTS events (
    task_id TEXT NOT NULL REFERENCES tasks (id),
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
"""

_BUSY_TIMEOUT_MS = 30_000


class SqliteTaskStore:
    """Tasks and events in one SQLite file, or in memory for tests (`SqliteTaskStore.in_memory()`)."""

    def __init__(self, path: Path | str) -> None:
        self._uri = path if isinstance(path, str) else f"file:{path}"
        self._keeper: sqlite3.Connection | None = None
        if isinstance(path, str) and "mode=memory" in path:
            # A shared in-memory database lives only while one connection holds it open.
            self._keeper = self._connect()
        with self._connection() as conn:
            if self._keeper is None:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @classmethod
    def in_memory(cls) -> SqliteTaskStore:
        return cls(f"file:shipway-{uuid.uuid4().hex}?mode=memory&cache=shared")

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the task store: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"task store error: {exc}") from exc
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on success, rolled back on any exception."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def create(self, task: Task, *, actor: str, payload: dict[str, Any]) -> Task:
        event = seal_event(
            task_id=task.id,
            seq=1,
            at=task.created_at,
            actor=actor,
            action="created",
            from_state=None,
            to_state=TaskState.REQUESTED,
            payload=payload,
            prev_sha256=GENESIS_SHA256,
        )
        stored = task.model_copy(update={"state": TaskState.REQUESTED, "version": 1, "head_sha256": event.sha256})
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM tasks WHERE id = ?", (task.id,)).fetchone():
                raise StoreError(f"task id {task.id} already exists")
            self._put_task(conn, stored, insert=True)
            self._put_event(conn, event)
        return stored

    def record(
        self,
        task_id: str,
        *,
        actor: str,
        action: str,
        payload: dict[str, Any],
        to_state: TaskState | None = None,
        reason: str | None = None,
    ) -> tuple[Task, Event]:
        with self._write() as conn:
            task = self._get(conn, task_id)
            target = to_state or task.state
            if to_state is not None:
                check_transition(task.id, task.state, to_state)
            event = seal_event(
                task_id=task.id,
                seq=task.version + 1,
                at=utcnow(),
                actor=actor,
                action=action,
                from_state=task.state,
                to_state=target,
                payload=payload,
                prev_sha256=task.head_sha256,
            )
            updated = task.model_copy(
                update={
                    "state": target,
                    "version": event.seq,
                    "head_sha256": event.sha256,
                    "updated_at": event.at,
                    "reason": reason if reason is not None else task.reason,
                }
            )
            self._put_event(conn, event)
            self._put_task(conn, updated, insert=False)
        return updated, event

    def get(self, task_id: str) -> Task:
        with self._connection() as conn:
            return self._get(conn, task_id)

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        # The prefix is validated as hex by the caller; GLOB keeps the match case-sensitive.
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id FROM tasks WHERE id GLOB ? ORDER BY id LIMIT ?", (prefix + "*", limit)
            ).fetchall()
        return [row[0] for row in rows]

    def page(self, state: TaskState | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Task], int]:
        where, args = ("WHERE state = ?", [state.value]) if state else ("", [])
        with self._connection() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM tasks {where}", args).fetchone()[0]  # noqa: S608
            rows = conn.execute(
                f"SELECT data FROM tasks {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",  # noqa: S608
                [*args, limit, offset],
            ).fetchall()
        return [Task.model_validate_json(row[0]) for row in rows], total

    def events(self, task_id: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT data FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (task_id, after_seq, -1 if limit is None else limit),
            ).fetchall()
        return [Event.model_validate_json(row[0]) for row in rows]

    def all_ids(self) -> list[str]:
        with self._connection() as conn:
            return [row[0] for row in conn.execute("SELECT id FROM tasks ORDER BY created_at, id")]

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    @staticmethod
    def _get(conn: sqlite3.Connection, task_id: str) -> Task:
        row = conn.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise TaskNotFound(f"no task {task_id!r}; list_tasks (or `shipway task list`) shows existing ids")
        return Task.model_validate_json(row[0])

    @staticmethod
    def _put_task(conn: sqlite3.Connection, task: Task, *, insert: bool) -> None:
        data = task.model_dump_json()
        if insert:
            conn.execute(
                "INSERT INTO tasks (id, state, created_at, data) VALUES (?, ?, ?, ?)",
                (task.id, task.state.value, task.created_at.isoformat(timespec="microseconds"), data),
            )
        else:
            conn.execute("UPDATE tasks SET state = ?, data = ? WHERE id = ?", (task.state.value, data, task.id))

    @staticmethod
    def _put_event(conn: sqlite3.Connection, event: Event) -> None:
        conn.execute(
            "INSERT INTO events (task_id, seq, data) VALUES (?, ?, ?)",
            (event.task_id, event.seq, json.dumps(event.model_dump(mode="json"), ensure_ascii=False)),
        )
