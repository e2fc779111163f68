"""Tasks meet the sandbox: each live task's worktree, the commands run in it, and cleanup.

The sandbox is chosen lazily, on the first command, so the server starts (and the task tools
work) on a machine without bubblewrap; running a command there says how to install it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mcp_server.artifacts import open_artifacts, shared_bucket
from mcp_server.config import STATE_DIR_NAME, Settings, ensure_state_dir
from mcp_server.errors import StoreError, UserInputError
from mcp_server.shared_branches import SharedBranches
from mcp_server.tasks.chain import sha256_hex
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor, Task, TaskState
from mcp_server.tasks.service import TaskService
from sandbox.base import ExecResult, Sandbox
from sandbox.host_git import GitError, run_git
from sandbox.select import choose_sandbox
from sandbox.worktree import BRANCH_PREFIX, Worktree, WorktreeManager
from tools.edits.blocks import EditBlock
from tools.edits.engine import EditLimits, parse_input
from tools.edits.report import EditReport
from tools.errors import ToolInputError
from tools.exec import check_command, check_timeout, run_command
from tools.task_edits import RevertReport, TaskDiff, apply_edit, revert_edit, show_diff

log = logging.getLogger(__name__)


def local_repo(task: Task, settings: Settings) -> Path:
    """The task's repository on this machine.

    Alone, that is the path the task was started in. In a team (a shared artifacts bucket), a
    task started on another machine names that machine's path; here it is this machine's clone,
    the served repository (`--repo`)."""
    path = Path(task.repo)
    if not shared_bucket(settings) or path == settings.repo or path in settings.extra_repos:
        return path
    return settings.repo


class TaskWorkspaces:
    def __init__(self, tasks: TaskService, settings: Settings) -> None:
        self.tasks = tasks
        self.settings = settings
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        artifacts = open_artifacts(settings)
        self.shared = SharedBranches(artifacts) if artifacts is not None else None
        tasks.on_end.append(self.release)

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = choose_sandbox(self.settings.unsafe_no_sandbox)
                if self.settings.unsafe_no_sandbox:
                    log.warning("SHIPWAY_UNSAFE_NO_SANDBOX=1: commands run on the host WITHOUT isolation")
            return self._sandbox

    def _state_dir(self, repo: Path) -> Path:
        return self.settings.state_path if repo == self.settings.repo else repo / STATE_DIR_NAME

    def manager(self, repo: Path) -> WorktreeManager:
        return WorktreeManager(repo, self._state_dir(repo))

    def repo_of(self, task: Task) -> Path:
        return local_repo(task, self.settings)

    def manager_for(self, task: Task) -> WorktreeManager:
        """The worktrees of the task's repository, with its branch where the task's log says it is."""
        manager = self.manager(self.repo_of(task))
        if self.shared is not None:
            with self.branch_lock(task):
                self.shared.bring(manager, task, self.tasks.store.events(task.id))
        return manager

    @contextlib.contextmanager
    def branch_lock(self, task: Task) -> Iterator[None]:
        """In a team, one process of this machine at a time moves the task's branch or reconciles it
        with the log (a reader must not undo a commit another process is about to record)."""
        if self.shared is None:
            yield
            return
        locks = ensure_state_dir(self._state_dir(self.repo_of(task))) / "locks"
        locks.mkdir(exist_ok=True)
        with (locks / f"{task.id}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def run(self, task_id: str, command: str | Sequence[str], timeout_s: float, actor: Actor) -> ExecResult:
        check_command(command)  # refuse bad input before a worktree is made
        check_timeout(timeout_s)
        task = self.tasks.get(task_id)
        if task.state in TERMINAL:
            raise UserInputError(f"task {task.id} already ended ({task.state}); its worktree is gone")
        sandbox = self.sandbox
        manager = self.manager_for(task)
        worktree = manager.ensure(task.id, task.base_commit)
        result = run_command(sandbox, manager.workspace(worktree), command, timeout_s)
        shown = command if isinstance(command, str) else " ".join(command)
        self.tasks.store.record(
            task.id,
            actor=str(actor),
            action="command",
            payload={
                "command": shown,
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "duration_ms": result.duration_ms,
                "truncated": result.truncated,
                "sandboxed": result.sandboxed,
                "limit_hit": result.limit_hit,
                "stdout_sha256": sha256_hex(result.stdout.encode()),
                "stderr_sha256": sha256_hex(result.stderr.encode()),
            },
        )
        return result

    def live_worktree(self, task_id: str) -> tuple[Task, Worktree]:
        task = self.tasks.get(task_id)
        if task.state in TERMINAL:
            raise UserInputError(
                f"task {task.id} already ended ({task.state}); its worktree is gone (branch shipway/{task.id} "
                "keeps its commits)"
            )
        return task, self.manager_for(task).ensure(task.id, task.base_commit)

    def edit(
        self,
        task_id: str,
        actor: Actor,
        patch: str | None = None,
        blocks: Sequence[EditBlock] | None = None,
        dry_run: bool = False,
    ) -> EditReport:
        """Apply an edit to the task's worktree and commit it; every applied or refused edit is logged."""
        parse_input(patch, blocks, EditLimits())  # refuse malformed input before a worktree is made
        task, worktree = self.live_worktree(task_id)
        allowed = self.tasks.approved_plan_files(task.id)
        enforce = self.settings.plan_conformance == "enforce"
        with self.branch_lock(task):
            report = apply_edit(worktree, task.id, task.base_commit, patch=patch, blocks=blocks, dry_run=dry_run,
                                allowed=allowed, enforce_allowed=enforce)  # fmt: skip
            if not dry_run:
                self._record_edit(task, worktree, report, actor, patch, blocks)
        if report.status == "applied" and not dry_run:
            self._back_to_coding(task, report.commit)
        return report

    def _record_edit(self, task: Task, worktree: Worktree, report: EditReport, actor: Actor, patch: str | None,
                     blocks: Sequence[EditBlock] | None) -> None:  # fmt: skip
        if report.status == "applied" and report.commit:
            self._publish(task, worktree, report.commit)
        payload: dict[str, Any] = {
            "status": report.status,
            "commit": report.commit,
            "files": [change.model_dump(exclude_defaults=True) for change in report.files],
            "input_sha256": sha256_hex((patch or "").encode() + str(blocks).encode()),
        }
        if report.problems:
            payload["problems"] = [f"{p.file}: {p.reason}"[:500] for p in report.problems]
        if report.warnings:
            payload["warnings"] = report.warnings
        action = {"applied": "edit_applied", "refused": "edit_refused"}.get(report.status, "edit_noop")
        self.tasks.store.record(task.id, actor=str(actor), action=action, payload=payload)

    def _publish(self, task: Task, worktree: Worktree, commit: str) -> None:
        """Share a new commit with the team before the event naming it; if that fails, undo the commit."""
        if self.shared is None:
            return
        try:
            self.shared.publish(worktree.repo, task, commit)
        except StoreError as exc:
            try:
                revert_edit(worktree, task.base_commit)
            except (ToolInputError, GitError):
                log.exception("could not undo commit %s of task %s after failing to publish it", commit, task.id)
            raise StoreError(f"the edit was not kept: {exc}") from exc

    def _back_to_coding(self, task: Task, commit: str | None) -> None:
        """A new commit after tests, CI or review sends the task back to coding (and voids an approval)."""
        system = "system:shipway"
        state = task.state
        if state in (TaskState.REVIEW, TaskState.APPROVED, TaskState.CI):
            action = "approval_lost" if state == TaskState.APPROVED else "reopened_by_edit"
            self.tasks.store.record(task.id, actor=system, action=action, payload={"head_sha": commit},
                                    to_state=TaskState.NEEDS_CHANGES)  # fmt: skip
            state = TaskState.NEEDS_CHANGES
        if state in (TaskState.TESTING, TaskState.NEEDS_CHANGES):
            self.tasks.store.record(task.id, actor=system, action="coding", payload={"head_sha": commit},
                                    to_state=TaskState.CODING)  # fmt: skip

    def branch_head(self, task: Task) -> str:
        """The tip of branch shipway/<task> (the base commit while the task has no branch yet)."""
        ref = f"refs/heads/{BRANCH_PREFIX}{task.id}^{{commit}}"
        found = run_git(self.manager_for(task).repo, "rev-parse", "--verify", "--quiet", ref, check=False)
        return found.stdout.strip() if found.returncode == 0 else task.base_commit

    def diff(self, task_id: str) -> TaskDiff:
        task, worktree = self.live_worktree(task_id)
        return show_diff(worktree, task.base_commit)

    def revert(self, task_id: str, actor: Actor) -> RevertReport:
        task, worktree = self.live_worktree(task_id)
        with self.branch_lock(task):
            report = revert_edit(worktree, task.base_commit)
            if self.shared is not None:
                self.shared.publish(worktree.repo, task, report.head_commit)
            self.tasks.store.record(task.id, actor=str(actor), action="edit_reverted", payload=report.model_dump())
        self._back_to_coding(self.tasks.get(task.id), report.head_commit)
        return report

    def run_throwaway(self, command: Sequence[str], timeout_s: float) -> ExecResult:
        """`command` over a throwaway worktree of the served repo at HEAD."""
        check_command(command)
        check_timeout(timeout_s)
        sandbox = self.sandbox
        manager = self.manager(self.settings.repo)
        with manager.throwaway("HEAD") as worktree:
            return run_command(sandbox, manager.workspace(worktree), command, timeout_s)

    def release(self, task: Task) -> None:
        """Remove an ended task's worktree (its branch stays, with everything committed)."""
        try:
            self.manager(self.repo_of(task)).remove(task.id)
        except Exception:  # cleanup must never undo the state change that triggered it
            log.exception("could not remove the worktree of task %s", task.id)
