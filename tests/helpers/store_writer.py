"""A separate process that writes to a task store as fast as it can (for concurrency tests).

python -m tests.helpers.store_writer DB TASK_ID COUNT   append COUNT notes to TASK_ID
python -m tests.helpers.store_writer DB new COUNT       create COUNT tasks, each moved twice

DB is a SQLite file, or `dynamodb:PREFIX@ENDPOINT` for the DynamoDB store.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from mcp_server.tasks.base import TaskStore
from mcp_server.tasks.model import Task, TaskState, utcnow
from mcp_server.tasks.sqlite_store import SqliteTaskStore

ACTOR = "agent:writer"


def new_task() -> Task:
    now = utcnow()
    return Task(
        id=secrets.token_hex(6), title="t", request="t", repo="/r", base_branch="main", base_commit="0" * 40,
        state=TaskState.REQUESTED, created_by=ACTOR, created_at=now, updated_at=now, version=0, head_sha256="",
    )  # fmt: skip


def open_store(db: str) -> TaskStore:
    if db.startswith("dynamodb:"):
        from mcp_server.tasks.dynamo_store import DynamoTaskStore  # boto3 costs ~0.5 s of start-up: only when asked

        prefix, _, endpoint = db.removeprefix("dynamodb:").partition("@")
        return DynamoTaskStore(prefix, endpoint_url=endpoint)
    return SqliteTaskStore(Path(db))


def main(db: str, target: str, count: int) -> None:
    store = open_store(db)
    for i in range(count):
        if target == "new":
            task = store.create(new_task(), actor=ACTOR, payload={"n": i})
            store.record(task.id, actor=ACTOR, action="plan", payload={"n": i}, to_state=TaskState.PLANNING)
            store.record(task.id, actor=ACTOR, action="note", payload={"text": "x" * 2000})
        else:
            store.record(target, actor=ACTOR, action="note", payload={"n": i, "pid": __import__("os").getpid()})
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
