"""`TaskJournal`: the agents' journal kept in the task's own event log, plus transcript files.

Each round is an `agent_round_started` event, each completed step an `agent_step` event (model,
tokens, cost, seconds, which tools it called and whether they worked) and each end an
`agent_round_finished` event, all hash-chained with the rest of the task. The conversation
itself (prompts, tool results) is too big for the log: it goes to
`<state>/agent-runs/<task>/round-<n>.jsonl`, one line per step (or to S3 for a team:
mcp_server/transcripts.py), and each step's event carries the sha256 of its line, so the log
vouches for the transcript it resumes from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.budget import Spend
from agents.chat import Message, Usage
from agents.loop import RoundInfo, StepRecord
from mcp_server.errors import ShipwayError, UserInputError
from mcp_server.tasks.model import Actor, Event
from mcp_server.tasks.service import TaskService
from mcp_server.transcripts import RUNS_DIR, LocalTranscripts, Transcripts

__all__ = ["RUNS_DIR", "LeaseLost", "TaskJournal", "spend_of"]


class LeaseLost(ShipwayError):
    """This worker no longer holds the task (its lease ran out and another worker took it): stop, record nothing."""


def spend_of(events: list[Event]) -> Spend:
    """What a task's agents used: its `agent_step` events added up (the budget, the page, the metrics)."""
    spend = Spend()
    for event in events:
        if event.action == "agent_step":
            step = event.payload
            spend.add(Usage.model_validate(step["usage"]), float(step["cost_usd"]), float(step["wall_s"]))
    return spend


class TaskJournal:
    def __init__(self, tasks: TaskService, task_id: str, transcripts: Transcripts | Path,
                 fence: Callable[[], bool] | None = None) -> None:  # fmt: skip
        self.tasks = tasks
        self.task_id = task_id
        self.transcripts = LocalTranscripts(transcripts) if isinstance(transcripts, Path) else transcripts
        self.fence = fence
        """Says whether this worker still holds the task; checked before every step is recorded."""

    def _events(self, *actions: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.tasks.store.events(self.task_id) if e.action in actions]

    def spend(self) -> Spend:
        return spend_of(self.tasks.store.events(self.task_id))

    def rounds(self, agent: str) -> list[RoundInfo]:
        found: dict[int, RoundInfo] = {}
        for payload in self._events("agent_round_started", "agent_round_finished"):
            if payload["agent"] != agent:
                continue
            number = int(payload["round"])
            if "outcome" in payload and number in found:
                found[number] = found[number].model_copy(update={"outcome": payload["outcome"]})
            elif "reason" in payload:
                found[number] = RoundInfo(number=number, agent=agent, reason=payload["reason"])
        return list(found.values())

    def conversation(self, round_no: int) -> list[Message]:
        """The round's messages, each line checked against the hash its event recorded."""
        expected = [p["sha256"] for p in self._events("agent_round_started", "agent_step") if p["round"] == round_no]
        lines = self.transcripts.lines(self.task_id, round_no)
        messages: list[Message] = []
        for n, sha in enumerate(expected):
            if n >= len(lines) or hashlib.sha256(lines[n]).hexdigest() != sha:
                where = self.transcripts.where(self.task_id, round_no)
                raise UserInputError(f"the transcript of round {round_no} of task {self.task_id} is missing or was "
                                     f"changed at line {n + 1}; it cannot be resumed ({where})")  # fmt: skip
            messages.extend(json.loads(lines[n]))
        if len(lines) > len(expected):  # written by a step that crashed before its event: not part of the round
            self.transcripts.truncate(self.task_id, round_no, len(expected))
        return messages

    def _append(self, round_no: int, messages: list[Message]) -> str:
        line = json.dumps(messages, separators=(",", ":"), ensure_ascii=False).encode()
        self.transcripts.append(self.task_id, round_no, line)
        return hashlib.sha256(line).hexdigest()

    def open_round(self, agent: str, reason: str, messages: list[Message]) -> int:
        number = len(self._events("agent_round_started")) + 1
        self.transcripts.truncate(self.task_id, number, 0)  # a line written by a run that crashed before its event
        sha = self._append(number, messages)
        self.tasks.record(self.task_id, Actor(kind="agent", name=agent), "agent_round_started",
                          {"agent": agent, "round": number, "reason": reason, "sha256": sha})  # fmt: skip
        return number

    def step(self, record: StepRecord) -> None:
        """Record a completed step once: the step's key (round, step) is its idempotency key. A worker whose
        lease was taken over (a second delivery of the task) finds it gone or the key taken, and stops."""
        if self.fence is not None and not self.fence():
            raise LeaseLost(f"task {self.task_id}: the lease was lost before step {record.round}.{record.step}")
        if any(p["round"] == record.round and p["step"] == record.step for p in self._events("agent_step")):
            raise LeaseLost(f"task {self.task_id}: step {record.round}.{record.step} was recorded by another worker")
        sha = self._append(record.round, record.messages)
        payload = record.model_dump(exclude={"messages"}) | {"sha256": sha}
        self.tasks.record(self.task_id, Actor(kind="agent", name=record.agent), "agent_step", payload)

    def close_round(self, round_no: int, outcome: str) -> None:
        agent = next(p["agent"] for p in self._events("agent_round_started") if p["round"] == round_no)
        self.tasks.record(self.task_id, Actor(kind="agent", name=agent), "agent_round_finished",
                          {"agent": agent, "round": round_no, "outcome": outcome})  # fmt: skip
