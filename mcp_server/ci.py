"""The CI gate: a verdict on the task branch's head commit, from Shipway or from the forge.

`LocalCI` runs the repo's CI command on the head, in the sandbox. `ForgeCI` reads the forge's
own verdict (GitHub's combined status and check runs). `TaskCI` picks one per task from the
`ci` setting. Either way a verdict is recorded once per head and moves a task waiting in `ci`.

Local flavour: the repo's CI command on the task branch's head, in the sandbox.

The head is tested as committed, in a fresh checkout, so files left uncommitted in the task's
worktree cannot make CI pass. The command comes from `[test] ci` in shipway.toml at the task's
base commit (default: the whole test suite). Runs happen in the background, one per head
commit; `status` starts one when the head has none and waits up to `wait_s` for it. When a
run finishes and the task is in `ci`, the task moves to `review` (green) or `needs_changes`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_server.config import Settings
from mcp_server.errors import InvalidTransition, UserInputError
from mcp_server.tasks.base import TaskStore
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor, Event, Task, TaskState
from mcp_server.test_runs import LOG_URI, TaskTests
from tools.forge.base import Check, Forge, ForgeChecks
from tools.testrun.detect import TestSpec, read_test_config, resolve_spec
from tools.testrun.report import TestReport, tail
from tools.testrun.runner import fill_report

log = logging.getLogger(__name__)

CIState = Literal["pending", "success", "failure", "error"]
MAX_WAIT_S = 600.0
SYSTEM = Actor(kind="system", name="ci")


Verdict = Callable[[str, bool], None]
"""Called with (task_id, green) once a verdict is recorded."""


class CIStatus(BaseModel):
    task_id: str
    provider: Literal["local", "github"] = "local"
    commit: str = Field(description="The task branch's head commit CI ran (or runs) on")
    state: CIState = Field(description="pending: still running; error: CI could not run the tests")
    run_id: str | None = Field(default=None, description="get_test_report(run_id) has the full report")
    summary: str = ""
    report: TestReport | None = None
    checks: list[Check] = Field(default_factory=list, description="The forge's statuses and check runs")
    task_state: TaskState


class LocalCI:
    def __init__(self, tests: TaskTests) -> None:
        self.tests = tests
        self._running: dict[tuple[str, str], Future[TestReport]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.on_verdict: list[Verdict] = []

    def status(self, task_id: str, wait_s: float = 0.0) -> CIStatus:
        tasks = self.tests.workspaces.tasks
        task, head = _live_head(self.tests, task_id, wait_s)
        done = self._finished(task.id, head)
        if done is not None and task.state == TaskState.CI:
            self._feed(task.id, head, done)  # CI ran on this head before the task waited for it
        if done is None:
            future = self._start(task, head)
            try:
                done = future.result(timeout=wait_s) if wait_s else None
            except FutureTimeout:
                done = None
        task = tasks.get(task.id)
        if done is None:
            return CIStatus(task_id=task.id, commit=head, state="pending", task_state=task.state,
                            summary=f"CI is running on {head[:12]}; ask again (wait_s waits for it)")  # fmt: skip
        return _status(task, head, done)

    def _result_file(self, task_id: str, head: str) -> Path:
        return self.tests.store.root / "ci" / f"{task_id}-{head}.run"

    def _finished(self, task_id: str, head: str) -> TestReport | None:
        marker = self._result_file(task_id, head)
        if not marker.is_file():
            return None
        return self.tests.store.load(marker.read_text(encoding="utf-8").strip())

    def _start(self, task: Task, head: str) -> Future[TestReport]:
        # Daemon threads: stopping the server must not wait for a CI run (its sandbox dies with us).
        # The run carries the caller's context: a verdict on CI that an agent run started (and waits
        # for) is that run's own news, not a wake-up for another worker (agent_dispatch.running_agents).
        with self._lock:
            key = (task.id, head)
            if key not in self._running:
                future: Future[TestReport] = Future()
                thread = threading.Thread(target=contextvars.copy_context().run, args=(self._work, future, task, head),
                                          daemon=True, name=f"shipway-ci-{task.id}")  # fmt: skip
                self._running[key] = future
                self._threads.append(thread)
                thread.start()
            return self._running[key]

    def _work(self, future: Future[TestReport], task: Task, head: str) -> None:
        try:
            future.set_result(self._run(task, head))
        except BaseException as exc:  # the future carries it to whoever waits
            future.set_exception(exc)

    def _run(self, task: Task, head: str) -> TestReport:
        try:
            report = self._test_head(task, head)
        except Exception as exc:  # a CI run must end with a result, whatever broke
            log.exception("CI run for task %s at %s failed", task.id, head)
            run_id, _ = self.tests.store.new_run(None)
            report = TestReport(run_id=run_id, task_id=task.id, commit=head, framework="unknown", command="",
                                selection="full", status="error", reason=f"CI could not run: {exc}"[:500],
                                log_uri=LOG_URI.format(run_id=run_id))  # fmt: skip
            self.tests.store.save(report, str(exc))
        marker = self._result_file(task.id, head)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(report.run_id, encoding="utf-8")
        self._feed(task.id, head, report)
        with self._lock:
            self._running.pop((task.id, head), None)
        return report

    def _spec(self, tree: Path, task: Task) -> TestSpec:
        config = read_test_config(self.tests.base_config(task))
        spec = resolve_spec(tree, config)
        if config.ci:
            return TestSpec(framework="command", source="shipway.toml [test] ci", command=config.ci,
                            setup=spec.setup, setup_inputs=spec.setup_inputs, junit=tuple(config.junit))  # fmt: skip
        return spec

    def _test_head(self, task: Task, head: str) -> TestReport:
        tests = self.tests
        manager = tests.workspaces.manager_for(task)
        run_id, out = tests.store.new_run(None)
        logs: list[str] = []
        spec, suite = tests.run_at_commit(manager, head, lambda tree: self._spec(tree, task), None, out / "head", logs)
        report = TestReport(run_id=run_id, task_id=task.id, commit=head, framework=spec.framework,
                            command=spec.command or "", selection="full", selection_reason="the CI gate",
                            status="error", log_uri=LOG_URI.format(run_id=run_id))  # fmt: skip
        if isinstance(suite, str):
            report = report.model_copy(update={"reason": suite, "log_tail": tail("".join(logs))})
        else:
            report = fill_report(report, suite, tests.settings.test_timeout_s)
        tests.store.save(report, "".join(logs))
        return report

    def _feed(self, task_id: str, head: str, report: TestReport) -> None:
        payload = {"commit": head, "run_id": report.run_id, "status": report.status,
                   "totals": report.totals.model_dump(), "reason": report.reason}  # fmt: skip
        record_verdict(self.tests.workspaces.tasks.store, task_id, report.status == "passed", payload, self.on_verdict)

    def close(self, timeout_s: float = 60.0) -> None:
        """Wait for CI runs still going (tests and the CLI; a server just exits)."""
        for thread in list(self._threads):
            thread.join(timeout_s)


def _status(task: Task, head: str, report: TestReport) -> CIStatus:
    state: CIState = {"passed": "success", "failed": "failure"}.get(report.status, "error")  # type: ignore[assignment]
    totals = report.totals
    summary = (
        f"{totals.passed} passed, {totals.failed} failed, {totals.errors} errors, {totals.skipped} skipped"
        if report.per_test
        else f"exit {report.exit_code}"
    )
    if report.reason:
        summary += f"; {report.reason}"
    return CIStatus(task_id=task.id, commit=head, state=state, run_id=report.run_id, summary=summary,
                    report=report, task_state=task.state)  # fmt: skip


def record_verdict(store: TaskStore, task_id: str, green: bool, payload: dict[str, Any],
                   listeners: list[Verdict]) -> None:  # fmt: skip
    """Record CI's verdict on `payload["commit"]`; a task waiting in `ci` moves to review or needs_changes."""
    task = store.get(task_id)
    target = TaskState.REVIEW if green else TaskState.NEEDS_CHANGES
    action = "ci_passed" if green else "ci_failed"
    try:
        if task.state == TaskState.CI:
            store.record(task_id, actor=str(SYSTEM), action=action, payload=payload, to_state=target)
            for listener in listeners:
                listener(task_id, green)
            return
    except InvalidTransition:
        pass  # the task moved on meanwhile: the result is still recorded below
    if task.state not in TERMINAL:
        store.record(task_id, actor=str(SYSTEM), action=action, payload=payload)


def _recorded(events: list[Event], head: str) -> str | None:
    """The verdict already recorded for `head` (ci_passed / ci_failed), newest first."""
    for event in reversed(events):
        if event.action in ("ci_passed", "ci_failed") and event.payload.get("commit") == head:
            return event.action
    return None


class ForgeCI:
    """CI as the forge reports it: every status and check run on the head, combined (any red fails)."""

    POLL_S = 2.0

    def __init__(self, tests: TaskTests, forge_for: Callable[[Task], Forge]) -> None:
        self.tests = tests
        self.forge_for = forge_for
        self.on_verdict: list[Verdict] = []

    def status(self, task_id: str, wait_s: float = 0.0) -> CIStatus:
        tasks = self.tests.workspaces.tasks
        task, head = _live_head(self.tests, task_id, wait_s)
        forge = self.forge_for(task)
        deadline = time.monotonic() + wait_s
        checks = forge.checks(head) or ForgeChecks(commit=head, state="pending")
        while checks.state == "pending" and time.monotonic() < deadline:
            time.sleep(min(self.POLL_S, max(0.0, deadline - time.monotonic())))
            checks = forge.checks(head) or checks
        if checks.state != "pending":
            self._feed(task, head, checks)
        task = tasks.get(task.id)
        state: CIState = checks.state
        return CIStatus(task_id=task.id, provider="github", commit=head, state=state, checks=checks.checks,
                        summary=_checks_summary(checks), task_state=task.state)  # fmt: skip

    def _feed(self, task: Task, head: str, checks: ForgeChecks) -> None:
        store = self.tests.workspaces.tasks.store
        action = "ci_passed" if checks.state == "success" else "ci_failed"
        if _recorded(store.events(task.id), head) == action and store.get(task.id).state != TaskState.CI:
            return  # this verdict is in the log already
        failing = [f"{c.name}: {c.detail or c.state}" for c in checks.checks if c.state == "failure"]
        payload = {"commit": head, "status": checks.state, "provider": "github", "failing": failing[:20]}
        record_verdict(store, task.id, checks.state == "success", payload, self.on_verdict)

    def close(self, timeout_s: float = 60.0) -> None:
        return None


class TaskCI:
    """The CI gate each task gets: the forge's checks when configured (`ci`), else a local run."""

    def __init__(self, local: LocalCI, forge: ForgeCI, settings: Settings, forge_for: Callable[[Task], Forge]) -> None:
        self.local = local
        self.forge = forge
        self.settings = settings
        self.forge_for = forge_for

    def uses_forge(self, task: Task) -> bool:
        return self.settings.forge_ci and self.forge_for(task).name != "local"

    def status(self, task_id: str, wait_s: float = 0.0) -> CIStatus:
        _check_wait(wait_s)
        task = self.local.tests.workspaces.tasks.get(task_id)
        return (self.forge if self.uses_forge(task) else self.local).status(task_id, wait_s)

    def listen(self, listener: Verdict) -> None:
        self.local.on_verdict.append(listener)
        self.forge.on_verdict.append(listener)

    def close(self, timeout_s: float = 60.0) -> None:
        self.local.close(timeout_s)


def _check_wait(wait_s: float) -> None:
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise UserInputError(f"wait_s must be between 0 and {MAX_WAIT_S:g}, got {wait_s:g}")


def _live_head(tests: TaskTests, task_id: str, wait_s: float) -> tuple[Task, str]:
    """The live task CI is asked about and its branch's head, after checking `wait_s`."""
    _check_wait(wait_s)
    task = tests.workspaces.tasks.get(task_id)
    if task.state in TERMINAL:
        raise UserInputError(f"task {task.id} already ended ({task.state}); CI runs only for live tasks")
    return task, tests.workspaces.branch_head(task)


def _checks_summary(checks: ForgeChecks) -> str:
    if not checks.checks:
        return f"no status or check run on {checks.commit[:12]} yet; ask again (wait_s waits for them)"
    parts = [f"{c.name}: {c.state}" + (f" ({c.url})" if c.url and c.state == "failure" else "") for c in checks.checks]
    return "; ".join(parts[:20])
