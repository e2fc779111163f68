"""A task, its states, the actors that move it, and the events that record every move."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TASK_ID_PATTERN = r"^[0-9a-f]{4,32}$"
"""Full task ids are 12 hex characters; any unique prefix of 4 or more is accepted."""


class TaskState(StrEnum):
    REQUESTED = "requested"
    PLANNING = "planning"
    PLAN_REVIEW = "plan_review"
    CODING = "coding"
    TESTING = "testing"
    PR_OPEN = "pr_open"
    CI = "ci"
    REVIEW = "review"
    APPROVED = "approved"
    MERGED = "merged"
    NEEDS_CHANGES = "needs_changes"
    REJECTED = "rejected"
    FAILED = "failed"
    ABORTED = "aborted"


ActorKind = Literal["human", "agent", "system"]


class Actor(BaseModel):
    """Who acted. Gates key on `kind`: an agent can never approve or merge."""

    model_config = ConfigDict(frozen=True)

    kind: ActorKind
    name: str = Field(min_length=1, max_length=100)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> Actor:
        kind, _, name = text.partition(":")
        return cls.model_validate({"kind": kind, "name": name})


def utcnow() -> datetime:
    return datetime.now(UTC)


class TaskSummary(BaseModel):
    """What a task list shows of each task."""

    id: str
    title: str = Field(description="First line of the request, shortened")
    state: TaskState
    repo: str = Field(description="Absolute path of the target repository")
    created_by: str
    created_at: datetime
    updated_at: datetime
    reason: str | None = Field(default=None, description="Why the task ended, for failed/aborted/rejected")
    autonomous: bool = Field(default=False, description="Shipway's own agents drive it (else the caller's agent)")


class Task(TaskSummary):
    """One request on its way to a merged (or refused) change."""

    request: str
    base_branch: str | None = Field(description="Branch the change will target; None on a detached HEAD")
    base_commit: str
    version: int = Field(description="Number of events recorded for this task")
    head_sha256: str = Field(description="Hash of the newest event in the task's chain")

    def summary(self) -> TaskSummary:
        return TaskSummary.model_validate(self.model_dump(include=set(TaskSummary.model_fields)))


class Event(BaseModel):
    """One entry of a task's append-only, hash-chained log."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    seq: int = Field(ge=1)
    at: datetime
    actor: str
    action: str
    from_state: TaskState | None
    to_state: TaskState
    payload: dict[str, Any]
    payload_sha256: str
    prev_sha256: str
    sha256: str
