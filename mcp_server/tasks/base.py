"""The `TaskStore` port: where tasks and their event chains live.

A backend must make `create` and `record` atomic: the task row and its new event are
written together or not at all, the transition is checked against the state read inside
the same atomic step, and concurrent writers (threads or processes) never fork a chain.
"""

from __future__ import annotations

from typing import Any, Protocol

from mcp_server.tasks.model import Event, Task, TaskState


class TaskStore(Protocol):
    def create(self, task: Task, *, actor: str, payload: dict[str, Any]) -> Task:
        """Store a new task (state `requested`) with its first event, `created`."""
        ...

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
        """Append an event; with `to_state`, also move the task (checked by the state machine).

        Raises TaskNotFound for an unknown id and InvalidTransition for an illegal move, in
        both cases changing nothing.
        """
        ...

    def get(self, task_id: str) -> Task:
        """The task with exactly this id, or TaskNotFound."""
        ...

    def ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]: ...

    def page(self, state: TaskState | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Task], int]:
        """Newest first; returns one page and the total number of matching tasks."""
        ...

    def events(self, task_id: str, after_seq: int = 0, limit: int | None = None) -> list[Event]: ...

    def all_ids(self) -> list[str]: ...

    def close(self) -> None: ...
