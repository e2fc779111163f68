"""Tasks meet the sandbox: each live task's worktree, the commands run in it, and cleanup.

The sandbox is chosen lazily, on the first command, so the server starts (and the task tools
work) on a machine without bubblewrap; running a command there says how to install it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp_server.config import STATE_DIR_NAME, Settings
from mcp_server.errors import UserInputError
from mcp_server.tasks.chain import sha256_hex
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor, Task, TaskState
from mcp_server.tasks.service import TaskService
from sandbox.base import ExecResult, Sandbox
from sandbox.host_git import run_git
from sandbox.select import choose_sandbox
from sandbox.worktree import BRANCH_PREFIX, Worktree, WorktreeManager
from tools.edits.blocks import EditBlock
from tools.edits.engine import EditLimits, parse_input
from tools.edits.report import EditReport
from tools.exec import check_command, check_timeout, run_command
from tools.task_edits import RevertReport, TaskDiff, apply_edit, revert_edit, show_diff

log = logging.getLogger(__name__)


class TaskWorkspaces:
    def __init__(self, tasks: TaskService, settings: Settings) -> None:
        self.tasks = tasks
        self.settings = settings
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        tasks.on_end.append(self.release)

    @property
    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = choose_sandbox(self.settings.unsafe_no_sandbox)
                if self.settings.unsafe_no_sandbox:
                    log.warning("SHIPWAY_UNSAFE_NO_SANDBOX=1: commands run on the host WITHOUT isolation")
            return self._sandbox

    def manager(self, repo: Path) -> WorktreeManager:
        state = self.settings.state_path if repo == self.settings.repo else repo / STATE_DIR_NAME
        return WorktreeManager(repo, state)

    def run(self, task_id: str, command: str | Sequence[str], timeout_s: float, actor: Actor) -> ExecResult:
        check_command(command)  # refuse bad input before a worktree is made
        check_timeout(timeout_s)
        task = self.tasks.get(task_id)
        if task.state in TERMINAL:
            raise UserInputError(f"task {task.id} already ended ({task.state}); its worktree is gone")
        sandbox = self.sandbox
        manager = self.manager(Path(task.repo))
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
        return task, self.manager(Path(task.repo)).ensure(task.id, task.base_commit)

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
        report = apply_edit(worktree, task.id, task.base_commit, patch=patch, blocks=blocks, dry_run=dry_run,
                            allowed=allowed, enforce_allowed=enforce)  # fmt: skip
        if dry_run:
            return report
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
        if report.status == "applied":
            self._back_to_coding(task, report.commit)
        return report

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
        found = run_git(Path(task.repo), "rev-parse", "--verify", "--quiet", ref, check=False)
        return found.stdout.strip() if found.returncode == 0 else task.base_commit

    def diff(self, task_id: str) -> TaskDiff:
        task, worktree = self.live_worktree(task_id)
        return show_diff(worktree, task.base_commit)

    def revert(self, task_id: str, actor: Actor) -> RevertReport:
        task, worktree = self.live_worktree(task_id)
        report = revert_edit(worktree, task.base_commit)
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
            self.manager(Path(task.repo)).remove(task.id)
        except Exception:  # cleanup must never undo the state change that triggered it
            log.exception("could not remove the worktree of task %s", task.id)
