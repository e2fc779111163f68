"""`DynamoTaskStore`: tasks and their event chains in DynamoDB, for many workers on many machines.

Two tables (`<prefix>-tasks`, key `id`; `<prefix>-events`, keys `task_id` + `seq`). Each write
is one `TransactWriteItems`: the new event is put only if its `(task_id, seq)` is free, and
the task row only if its `version` is still the one the writer read. So two writers that read
the same version cannot both append: one transaction is cancelled, and that writer reads
again, re-checks the transition against the state it finds, and retries. The chain stays
linear, and a transition is always judged against the state it moves from. A process killed
mid-write leaves nothing half-done: a transaction is all or nothing.

Rows hold the pydantic models as JSON strings (no float/Decimal conversion, exactly the bytes
the SQLite store keeps). Listing (`page`, `ids_with_prefix`, `all_ids`) scans the tasks table:
fine for thousands of tasks, and the one place a larger team would add an index.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mcp_server.aws_errors import aws_errors
from mcp_server.errors import StoreError, TaskNotFound
from mcp_server.tasks.chain import GENESIS_SHA256, seal_event
from mcp_server.tasks.machine import check_transition
from mcp_server.tasks.model import Event, Task, TaskState, utcnow

MAX_ATTEMPTS = 50
_NOT_FOUND = "no task {!r}; list_tasks (or `shipway task list`) shows existing ids"


def _cancelled_by_condition(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    if error.get("Code") == "ConditionalCheckFailedException":
        return True
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    codes = {r.get("Code") for r in reasons} if reasons else set()
    return "ConditionalCheckFailed" in codes or (not codes and "ConditionalCheckFailed" in str(exc))


class DynamoTaskStore:
    def __init__(self, table_prefix: str = "shipway", endpoint_url: str | None = None,
                 region: str | None = None) -> None:  # fmt: skip
        self.tasks_table = f"{table_prefix}-tasks"
        self.events_table = f"{table_prefix}-events"
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        session = boto3.session.Session(region_name=region)
        self.db = session.client("dynamodb", endpoint_url=endpoint_url, config=config)

    # -- setup

    def create_tables(self) -> list[str]:
        """Create both tables (on-demand billing) if missing; returns the names created."""
        specs = {
            self.tasks_table: ([("id", "S")], [("id", "HASH")]),
            self.events_table: ([("task_id", "S"), ("seq", "N")], [("task_id", "HASH"), ("seq", "RANGE")]),
        }
        made = []
        with aws_errors("task store (DynamoDB)", "creating the tables"):
            existing = set(self.db.list_tables().get("TableNames", []))
            for name, (attributes, keys) in specs.items():
                if name in existing:
                    continue
                self.db.create_table(
                    TableName=name, BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in attributes],  # type: ignore[typeddict-item]
                    KeySchema=[{"AttributeName": a, "KeyType": k} for a, k in keys],  # type: ignore[typeddict-item]
                )  # fmt: skip
                made.append(name)
            for name in made:
                self.db.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        return made

    # -- writes

    def create(self, task: Task, *, actor: str, payload: dict[str, Any]) -> Task:
        event = seal_event(task_id=task.id, seq=1, at=task.created_at, actor=actor, action="created", from_state=None,
                           to_state=TaskState.REQUESTED, payload=payload, prev_sha256=GENESIS_SHA256)  # fmt: skip
        stored = task.model_copy(update={"state": TaskState.REQUESTED, "version": 1, "head_sha256": event.sha256})
        try:
            self._write(stored, event, expected_version=None)
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                raise StoreError(f"task id {task.id} already exists") from exc
            raise StoreError(f"task store error: {exc}") from exc
        return stored

    def record(self, task_id: str, *, actor: str, action: str, payload: dict[str, Any],
               to_state: TaskState | None = None, reason: str | None = None) -> tuple[Task, Event]:  # fmt: skip
        for attempt in range(MAX_ATTEMPTS):
            task = self.get(task_id)
            target = to_state or task.state
            if to_state is not None:
                check_transition(task.id, task.state, to_state)
            event = seal_event(task_id=task.id, seq=task.version + 1, at=utcnow(), actor=actor, action=action,
                               from_state=task.state, to_state=target, payload=payload,
                               prev_sha256=task.head_sha256)  # fmt: skip
            updated = task.model_copy(update={"state": target, "version": event.seq, "head_sha256": event.sha256,
                                              "updated_at": event.at,
                                              "reason": reason if reason is not None else task.reason})  # fmt: skip
            try:
                self._write(updated, event, expected_version=task.version)
                return updated, event
            except ClientError as exc:
                if not _cancelled_by_condition(exc):
                    raise StoreError(f"task store error: {exc}") from exc
                time.sleep(min(0.005 * (attempt + 1), 0.1))  # another writer appended first: read again
        raise StoreError(f"task {task_id} is contended by too many writers; try again")

    def _write(self, task: Task, event: Event, expected_version: int | None) -> None:
        task_item = {"id": {"S": task.id}, "state": {"S": task.state.value}, "version": {"N": str(task.version)},
                     "created_at": {"S": task.created_at.isoformat(timespec="microseconds")},
                     "data": {"S": task.model_dump_json()}}  # fmt: skip
        event_item = {"task_id": {"S": event.task_id}, "seq": {"N": str(event.seq)},
                      "data": {"S": json.dumps(event.model_dump(mode="json"), ensure_ascii=False)}}  # fmt: skip
        task_put: dict[str, Any] = {"TableName": self.tasks_table, "Item": task_item}
        if expected_version is None:
            task_put["ConditionExpression"] = "attribute_not_exists(id)"
        else:
            task_put["ConditionExpression"] = "version = :seen"
            task_put["ExpressionAttributeValues"] = {":seen": {"N": str(expected_version)}}
        event_put = {"TableName": self.events_table, "Item": event_item,
                     "ConditionExpression": "attribute_not_exists(task_id)"}  # fmt: skip
        try:
            self.db.transact_write_items(TransactItems=[{"Put": event_put}, {"Put": task_put}])  # type: ignore[typeddict-item]
        except BotoCoreError as exc:
            raise StoreError(f"the task store (DynamoDB) is unreachable: {exc}") from exc

    # -- reads

    def get(self, task_id: str) -> Task:
        with aws_errors("task store (DynamoDB)", "reading a task"):
            found = self.db.get_item(TableName=self.tasks_table, Key={"id": {"S": task_id}}, ConsistentRead=True)
        item = found.get("Item")
        if item is None:
            raise TaskNotFound(_NOT_FOUND.format(task_id))
        return Task.model_validate_json(item["data"]["S"])

    def _scan(self) -> list[Task]:
        tasks: list[Task] = []
        with aws_errors("task store (DynamoDB)", "listing tasks"):
            for page in self.db.get_paginator("scan").paginate(TableName=self.tasks_table, ConsistentRead=True):
                tasks += [Task.model_validate_json(item["data"]["S"]) for item in page.get("Items", [])]
        return tasks

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        return sorted(t.id for t in self._scan() if t.id.startswith(prefix))[:limit]

    def page(self, state: TaskState | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Task], int]:
        tasks = [t for t in self._scan() if state is None or t.state == state]
        tasks.sort(key=lambda t: t.id)
        tasks.sort(key=lambda t: t.created_at, reverse=True)  # newest first, ties by id (as the SQLite store)
        return tasks[offset : offset + limit], len(tasks)

    def events(self, task_id: str, after_seq: int = 0, limit: int | None = None) -> list[Event]:
        found: list[Event] = []
        query = {"TableName": self.events_table, "ConsistentRead": True,
                 "KeyConditionExpression": "task_id = :t AND seq > :after",
                 "ExpressionAttributeValues": {":t": {"S": task_id}, ":after": {"N": str(after_seq)}}}  # fmt: skip
        with aws_errors("task store (DynamoDB)", "reading events"):
            for page in self.db.get_paginator("query").paginate(**query):  # type: ignore[arg-type]
                found += [Event.model_validate_json(item["data"]["S"]) for item in page.get("Items", [])]
                if limit is not None and len(found) >= limit:
                    break
        return found if limit is None else found[:limit]

    def all_ids(self) -> list[str]:
        tasks = self._scan()
        tasks.sort(key=lambda t: (t.created_at, t.id))
        return [t.id for t in tasks]

    def close(self) -> None:
        self.db.close()
