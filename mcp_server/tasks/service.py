"""`TaskService`: the task operations every front end (MCP tools, CLI, agents) goes through.

It validates input before touching the store, so a refused call changes nothing, and its
error messages are written for whoever called: what failed and what to do instead.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mcp_server.config import Settings
from mcp_server.errors import RepoNotUsable, StoreError, TaskNotFound, UserInputError
from mcp_server.tasks.base import TaskStore
from mcp_server.tasks.chain import ChainReport, verify_chain
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import TASK_ID_PATTERN, Actor, Event, Task, TaskState, TaskSummary, utcnow
from sandbox.host_git import GitError, NotAGitRepo, inspect_repo

MAX_REASON_CHARS = 2_000
MAX_PAGE = 200
TITLE_CHARS = 80
_ID_RE = re.compile(TASK_ID_PATTERN)
NO_MODEL = (
    "no model is configured for Shipway's agents, so an autonomous task cannot start. Either set SHIPWAY_MODEL "
    "(plus SHIPWAY_MODEL_BASE_URL and SHIPWAY_MODEL_API_KEY for a server other than OpenAI; see docs/agents.md), "
    "or drive the task from your MCP client's own agent: start_task with autonomous=false, then search_repo, "
    "propose_plan, apply_edit, run_tests and open_pr (`shipway task start --manual` from the CLI)"
)
_LIST_HINT = "list_tasks (or `shipway task list`) shows the ids of existing tasks"


class TaskPage(BaseModel):
    tasks: list[TaskSummary]
    total: int = Field(description="Tasks matching the filter; page with offset/limit for the rest")
    offset: int


class TaskLog(BaseModel):
    task_id: str
    events: list[Event]
    total: int = Field(description="Events in the whole log; page with after_seq/limit for the rest")
    chain: ChainReport


def make_title(request: str) -> str:
    first = request.strip().splitlines()[0].strip()
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


def _check_text(name: str, text: str, limit: int, hint: str) -> str:
    text = text.strip()
    if not text:
        raise UserInputError(f"{name} is empty; say in plain words what you want")
    if "\x00" in text:
        raise UserInputError(f"{name} contains a NUL character; send plain text")
    if len(text) > limit:
        raise UserInputError(f"{name} is {len(text):,} characters; the limit is {limit:,}. {hint}")
    return text


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise UserInputError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise UserInputError(f"offset must be 0 or more, got {offset}")


class TaskService:
    def __init__(self, store: TaskStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.on_end: list[Callable[[Task], None]] = []
        """Called after a task reaches a final state (e.g. to remove its worktree)."""
        self.on_move: list[Callable[[Task], None]] = []
        """Called after a task is created or moved through `record` (e.g. to wake its agents)."""

    def resolve_id(self, task_id: str) -> str:
        """The full id for `task_id` or a unique prefix of it (at least 4 characters)."""
        candidate = task_id.strip().lower()
        if not _ID_RE.fullmatch(candidate):
            raise TaskNotFound(
                f"{task_id[:40]!r} is not a task id (ids are hex, e.g. 3f9a1c0b2d4e; a unique prefix of "
                f"4 or more characters works); {_LIST_HINT}"
            )
        matches = self.store.ids_with_prefix(candidate, limit=6)
        if candidate in matches:
            return candidate
        if not matches:
            raise TaskNotFound(f"no task {candidate!r}; {_LIST_HINT}")
        if len(matches) > 1:
            shown = ", ".join(matches[:5])
            raise TaskNotFound(f"{candidate!r} matches several tasks ({shown}…); give more characters")
        return matches[0]

    def _target_repo(self, repo: str | None) -> tuple[Path, str | None, str]:
        served = [self.settings.repo, *self.settings.extra_repos]
        path = self.settings.repo if repo is None else Path(repo).expanduser()
        if not path.is_absolute():
            raise RepoNotUsable(f"repo must be an absolute path, got {repo!r}; or omit it for {served[0]}")
        try:
            info = inspect_repo(path.resolve())
        except NotAGitRepo as exc:
            raise RepoNotUsable(f"{exc}; run `git init` there, or omit repo to use {served[0]}") from exc
        except GitError as exc:
            raise RepoNotUsable(f"cannot read {path} with git: {exc}") from exc
        if info.root not in {p.resolve() for p in served}:
            names = ", ".join(str(p) for p in served)
            raise RepoNotUsable(
                f"{info.root} is not served by this Shipway server (it serves: {names}); start the server "
                "with --repo for it, or add it to SHIPWAY_EXTRA_REPOS"
            )
        if info.head_commit is None:
            raise RepoNotUsable(f"{info.root} has no commits yet; commit something first, then start the task")
        base_branch = self.settings.base_branch if info.root == self.settings.repo else None
        return info.root, base_branch or info.branch, info.head_commit

    def start(self, request: str, actor: Actor, repo: str | None = None, autonomous: bool = False) -> Task:
        if autonomous and not self.settings.agents_configured:
            raise UserInputError(NO_MODEL)
        text = _check_text(
            "request",
            request,
            self.settings.max_request_chars,
            "Shorten it, or put the details in a file in the repository and refer to that file.",
        )
        root, base_branch, base_commit = self._target_repo(repo)
        now = utcnow()
        task = Task(
            id=secrets.token_hex(6),
            title=make_title(text),
            request=text,
            repo=str(root),
            base_branch=base_branch,
            base_commit=base_commit,
            state=TaskState.REQUESTED,
            autonomous=autonomous,
            created_by=str(actor),
            created_at=now,
            updated_at=now,
            version=0,
            head_sha256="",
        )
        payload = {"request": text, "repo": str(root), "base_branch": base_branch, "base_commit": base_commit,
                   "autonomous": autonomous}  # fmt: skip
        try:
            created = self.store.create(task, actor=str(actor), payload=payload)
        except StoreError:
            # A 48-bit id collision is vanishingly rare; one retry with a fresh id settles it.
            created = self.store.create(
                task.model_copy(update={"id": secrets.token_hex(6)}), actor=str(actor), payload=payload
            )
        for callback in self.on_move:
            callback(created)
        return created

    def get(self, task_id: str) -> Task:
        return self.store.get(self.resolve_id(task_id))

    def page(self, state: TaskState | None = None, limit: int = 20, offset: int = 0) -> TaskPage:
        _check_page(limit, offset)
        tasks, total = self.store.page(state=state, limit=limit, offset=offset)
        return TaskPage(tasks=[task.summary() for task in tasks], total=total, offset=offset)

    def abort(self, task_id: str, reason: str, actor: Actor) -> Task:
        reason = _check_text("reason", reason, MAX_REASON_CHARS, "Say in a sentence why the task is stopped.")
        task = self.get(task_id)
        if task.state in TERMINAL:
            raise UserInputError(f"task {task.id} already ended ({task.state}); only a live task can be aborted")
        return self.record(task.id, actor, "aborted", {"reason": reason}, TaskState.ABORTED, reason=reason)

    def record(self, task_id: str, actor: Actor, action: str, payload: dict[str, Any],
               to_state: TaskState | None = None, reason: str | None = None) -> Task:  # fmt: skip
        """Append an event (and move the task); a move into a final state runs the `on_end` callbacks."""
        updated, _ = self.store.record(task_id, actor=str(actor), action=action, payload=payload, to_state=to_state,
                                       reason=reason)  # fmt: skip
        if to_state in TERMINAL:
            for callback in self.on_end:
                callback(updated)
        if to_state is not None:
            for callback in self.on_move:
                callback(updated)
        return updated

    def approved_plan_files(self, task_id: str) -> list[str] | None:
        """The files the task's approved plan lists (paths, directories or globs), or None without one.

        Reads the newest `plan_approved` event; its payload carries the plan as `{"plan": {"files": [...]}}`.
        """
        task = self.get(task_id)
        approved = [event for event in self.store.events(task.id) if event.action == "plan_approved"]
        if not approved:
            return None
        files = approved[-1].payload.get("plan", {}).get("files")
        return [str(f) for f in files] if isinstance(files, list) and files else None

    def log(self, task_id: str, after_seq: int = 0, limit: int = 50) -> TaskLog:
        _check_page(limit, 0)
        if after_seq < 0:
            raise UserInputError(f"after_seq must be 0 or more, got {after_seq}")
        task = self.get(task_id)
        everything = self.store.events(task.id)
        page = [event for event in everything if event.seq > after_seq][:limit]
        return TaskLog(task_id=task.id, events=page, total=len(everything), chain=verify_chain(task, everything))

    def verify(self, task_id: str) -> ChainReport:
        task = self.get(task_id)
        return verify_chain(task, self.store.events(task.id))

    def verify_all(self) -> list[ChainReport]:
        return [verify_chain(self.store.get(i), self.store.events(i)) for i in self.store.all_ids()]
