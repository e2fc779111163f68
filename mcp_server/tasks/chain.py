"""The per-task hash chain: how an event's hash is computed and how a log is verified.

Each event stores sha256(payload) and the hash of the event before it; its own hash covers
every field, so editing, removing or reordering any event (or the payload inside it) breaks
the chain from that point on. `verify_chain` also checks that the task row agrees with the
newest event, so a state changed behind the log's back is caught too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from mcp_server.tasks.model import Event, Task, TaskState

GENESIS_SHA256 = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Stable bytes for hashing: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_sha256(event: Event) -> str:
    """Hash of every field of the event except its own hash."""
    fields = event.model_dump(mode="json", exclude={"sha256", "payload"})
    return sha256_hex(canonical_json(fields))


def seal_event(
    *,
    task_id: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    from_state: TaskState | None,
    to_state: TaskState,
    payload: dict[str, Any],
    prev_sha256: str,
) -> Event:
    """Build the next event of a chain with its hashes filled in."""
    unsealed = Event(
        task_id=task_id,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state,
        payload=payload,
        payload_sha256=sha256_hex(canonical_json(payload)),
        prev_sha256=prev_sha256,
        sha256="",
    )
    return unsealed.model_copy(update={"sha256": event_sha256(unsealed)})


class ChainReport(BaseModel):
    """Outcome of verifying one task's log."""

    task_id: str
    ok: bool
    events_checked: int
    problem: str | None = None
    bad_seq: int | None = None


def _check_event(task_id: str, event: Event, expected_seq: int, prev: Event | None) -> str | None:
    if event.task_id != task_id:
        return f"event {event.seq} belongs to task {event.task_id}"
    if event.seq != expected_seq:
        return f"expected event {expected_seq}, found {event.seq} (an event is missing or out of order)"
    prev_sha = prev.sha256 if prev else GENESIS_SHA256
    if event.prev_sha256 != prev_sha:
        return f"event {event.seq} does not link to the event before it"
    if prev is not None and event.from_state != prev.to_state:
        return f"event {event.seq} starts from {event.from_state} but the task was {prev.to_state}"
    if sha256_hex(canonical_json(event.payload)) != event.payload_sha256:
        return f"event {event.seq} payload does not match its recorded hash"
    if event_sha256(event) != event.sha256:
        return f"event {event.seq} fields do not match its recorded hash"
    return None


def verify_chain(task: Task, events: list[Event]) -> ChainReport:
    """Check every link of a task's log and that the task row agrees with its newest event."""
    prev: Event | None = None
    for expected_seq, event in enumerate(events, start=1):
        problem = _check_event(task.id, event, expected_seq, prev)
        if problem:
            return ChainReport(
                task_id=task.id, ok=False, events_checked=expected_seq, problem=problem, bad_seq=event.seq
            )
        prev = event
    checked = len(events)
    if prev is None:
        return ChainReport(task_id=task.id, ok=False, events_checked=0, problem="the task has no events")
    for problem in (
        f"the task is {task.state} but its newest event says {prev.to_state}" if task.state != prev.to_state else None,
        f"the task claims {task.version} events but {checked} are recorded" if task.version != checked else None,
        "the task's head hash is not its newest event's hash" if task.head_sha256 != prev.sha256 else None,
    ):
        if problem:
            return ChainReport(task_id=task.id, ok=False, events_checked=checked, problem=problem)
    return ChainReport(task_id=task.id, ok=True, events_checked=checked)
