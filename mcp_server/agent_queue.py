"""The agent work queue: which autonomous tasks wait for a worker, and which worker holds which.

A worker claims a task with a lease and renews it while it works; a crashed worker's lease
runs out and the task can be claimed again (`shipway task continue` also takes over a task
whose worker process is gone). A wake-up while a worker holds the task is remembered, and the
worker goes round once more before it lets go, so no wake-up is lost between the two.

This is the embedded default, a SQLite file next to the task store; the `AgentQueue` protocol
is what a shared queue (SQS) implements for many machines.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from mcp_server.errors import StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_jobs (
    task_id TEXT PRIMARY KEY,
    queued_at REAL NOT NULL,
    worker TEXT,
    lease_until REAL,
    wanted INTEGER NOT NULL DEFAULT 0
)
"""


class Lease(BaseModel):
    task_id: str
    worker: str | None
    lease_until: float | None

    def live(self, now: float | None = None) -> bool:
        return self.worker is not None and (self.lease_until or 0) > (now or time.time())


class AgentQueue(Protocol):
    def put(self, task_id: str) -> bool:
        """Queue the task; False when a live worker holds it (it will go round again instead)."""
        ...

    def claim(self, worker: str, lease_s: float, task_id: str | None = None) -> str | None:
        """Take the oldest claimable task (or exactly `task_id`) for `lease_s` seconds."""
        ...

    def renew(self, task_id: str, worker: str, lease_s: float) -> bool: ...

    def release(self, task_id: str, worker: str) -> bool:
        """Let go of the task. If it was woken meanwhile it stays queued and this returns True (the
        worker should go round again); otherwise it leaves the queue."""
        ...

    def lease(self, task_id: str) -> Lease | None: ...

    def expire(self, task_id: str) -> None:
        """End a dead worker's lease now, so the task can be claimed."""
        ...


class SqliteAgentQueue:
    def __init__(self, path: Path) -> None:
        self._path = path
        with self._tx() as conn:
            conn.execute(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the agent queue: {exc}") from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def put(self, task_id: str) -> bool:
        now = time.time()
        with self._tx() as conn:
            row = conn.execute("SELECT worker, lease_until FROM agent_jobs WHERE task_id = ?", (task_id,)).fetchone()
            if row is None:
                conn.execute("INSERT INTO agent_jobs (task_id, queued_at) VALUES (?, ?)", (task_id, now))
                return True
            if row[0] is not None and (row[1] or 0) > now:
                conn.execute("UPDATE agent_jobs SET wanted = 1 WHERE task_id = ?", (task_id,))
                return False
            conn.execute("UPDATE agent_jobs SET worker = NULL, lease_until = NULL WHERE task_id = ?", (task_id,))
            return True

    def claim(self, worker: str, lease_s: float, task_id: str | None = None) -> str | None:
        now = time.time()
        query = "SELECT task_id FROM agent_jobs WHERE (worker IS NULL OR lease_until <= ?)"
        args: tuple[object, ...] = (now,)
        if task_id is not None:
            query += " AND task_id = ?"
            args += (task_id,)
        with self._tx() as conn:
            row = conn.execute(query + " ORDER BY queued_at LIMIT 1", args).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE agent_jobs SET worker = ?, lease_until = ?, wanted = 0 WHERE task_id = ?",
                         (worker, now + lease_s, row[0]))  # fmt: skip
            return str(row[0])

    def renew(self, task_id: str, worker: str, lease_s: float) -> bool:
        with self._tx() as conn:
            cursor = conn.execute("UPDATE agent_jobs SET lease_until = ? WHERE task_id = ? AND worker = ?",
                                  (time.time() + lease_s, task_id, worker))  # fmt: skip
            return cursor.rowcount == 1

    def release(self, task_id: str, worker: str) -> bool:
        with self._tx() as conn:
            row = conn.execute("SELECT wanted FROM agent_jobs WHERE task_id = ? AND worker = ?",
                               (task_id, worker)).fetchone()  # fmt: skip
            if row is None:
                return False
            if row[0]:
                conn.execute("UPDATE agent_jobs SET worker = NULL, lease_until = NULL, wanted = 0 WHERE task_id = ?",
                             (task_id,))  # fmt: skip
                return True
            conn.execute("DELETE FROM agent_jobs WHERE task_id = ?", (task_id,))
            return False

    def lease(self, task_id: str) -> Lease | None:
        with self._tx() as conn:
            row = conn.execute("SELECT worker, lease_until FROM agent_jobs WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else Lease(task_id=task_id, worker=row[0], lease_until=row[1])

    def expire(self, task_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE agent_jobs SET lease_until = 0 WHERE task_id = ?", (task_id,))
