"""The local CI gate: the task branch's head, tested in a fresh checkout, feeding the task's state."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.ci import CIStatus
from mcp_server.config import load_settings
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task, TaskState
from tests.helpers.gitrepo import git
from tests.helpers.samples import commit_file, sample_repo
from tests.test_sandbox_tool import needs_bwrap, shipway
from tools.edits.blocks import EditBlock

pytestmark = [pytest.mark.anyio, needs_bwrap]

TO_CI = [TaskState.PLANNING, TaskState.PLAN_REVIEW, TaskState.CODING, TaskState.TESTING, TaskState.PR_OPEN,
         TaskState.CI]  # fmt: skip
SYSTEM = "system:test"


def green_sample(dest: Path) -> Path:
    """The pytest sample without its deliberately broken tests: a suite that passes."""
    repo = sample_repo("pytest-sample", dest)
    for name in ("tests/test_broken_import.py", "tests/test_fixtures.py", "tests/test_text.py"):
        git(repo, "rm", "-q", name)
    git(repo, "commit", "-q", "-m", "only passing tests")
    return repo


@pytest.fixture
def green(tmp_path: Path) -> Iterator[ServerDeps]:
    deps = open_deps(load_settings(repo=green_sample(tmp_path / "green"), test_python=sys.executable))
    yield deps
    deps.ci.close()
    deps.tasks.store.close()


def move_to_ci(deps: ServerDeps, task: Task) -> None:
    for state in TO_CI:
        deps.tasks.store.record(task.id, actor=SYSTEM, action="moved", payload={}, to_state=state)


def edit(deps: ServerDeps, task: Task, path: str, content: str) -> None:
    report = deps.workspaces.edit(
        task.id, Actor(kind="agent", name="coder"), blocks=[EditBlock(path=path, content=content)]
    )
    assert report.status == "applied"


async def ci_status(deps: ServerDeps, **arguments: Any) -> CIStatus:
    async with Client(create_server(deps)) as client:
        result = await client.call_tool("ci_status", arguments)
    assert not result.is_error, result.content
    return CIStatus.model_validate(result.structured_content)


async def test_green_ci_on_the_head_moves_the_task_from_ci_to_review(green: ServerDeps, alice: Actor) -> None:
    task = green.tasks.start("add a test", alice)
    edit(
        green,
        task,
        "tests/test_more.py",
        "from calc.arith import add\n\n\ndef test_add_zero() -> None:\n    assert add(0, 0) == 0\n",
    )
    move_to_ci(green, task)
    status = await ci_status(green, task_id=task.id, wait_s=120)
    head = git(green.settings.repo, "rev-parse", f"shipway/{task.id}")
    assert status.state == "success" and status.commit == head
    assert status.report is not None and status.report.totals.passed == 6
    assert status.task_state == "review" and green.tasks.get(task.id).state == "review"
    event = green.tasks.store.events(task.id)[-1]
    assert event.action == "ci_passed" and event.actor == "system:ci" and event.payload["commit"] == head


async def test_red_ci_moves_the_task_to_needs_changes_with_the_failures(tmp_path: Path, alice: Actor) -> None:
    deps = open_deps(load_settings(repo=sample_repo("pytest-sample", tmp_path / "red"), test_python=sys.executable))
    task = deps.tasks.start("anything", alice)
    move_to_ci(deps, task)
    status = await ci_status(deps, task_id=task.id, wait_s=120)
    assert status.state == "failure" and status.task_state == "needs_changes"
    assert status.report is not None
    assert {f.id for f in status.report.failures} >= {"tests/test_text.py::test_slug_keeps_unicode_letters"}
    assert deps.tasks.store.events(task.id)[-1].action == "ci_failed"
    deps.ci.close()


async def test_ci_tests_the_committed_head_not_files_left_in_the_worktree(green: ServerDeps, alice: Actor) -> None:
    task = green.tasks.start("leave junk", alice)
    worktree = green.settings.state_path / "worktrees" / task.id
    green.workspaces.live_worktree(task.id)
    (worktree / "tests" / "test_junk.py").write_text("def test_junk() -> None:\n    assert False\n")
    status = await ci_status(green, task_id=task.id, wait_s=120)
    assert status.state == "success", status.summary
    assert status.task_state == "requested", "a task that is not in ci keeps its state"
    assert green.tasks.store.events(task.id)[-1].action == "ci_passed"


async def test_a_running_ci_reports_pending_and_a_finished_one_is_not_run_again(
    green: ServerDeps, alice: Actor
) -> None:
    task = green.tasks.start("poll", alice)
    first = await ci_status(green, task_id=task.id)
    assert first.state == "pending" and first.run_id is None
    done = await ci_status(green, task_id=task.id, wait_s=120)
    again = await ci_status(green, task_id=task.id)
    assert done.state == again.state == "success" and again.run_id == done.run_id
    assert [e.action for e in green.tasks.store.events(task.id)].count("ci_passed") == 1


async def test_the_ci_command_comes_from_the_base_commit(tmp_path: Path, alice: Actor) -> None:
    repo = green_sample(tmp_path / "repo")
    commit_file(repo, "shipway.toml", '[test]\nci = "echo checking; exit 3"\n')
    deps = open_deps(load_settings(repo=repo, test_python=sys.executable))
    task = deps.tasks.start("try to neuter CI", alice)
    edit(deps, task, "shipway.toml", '[test]\nci = "true"\n')
    status = await ci_status(deps, task_id=task.id, wait_s=120)
    assert status.state == "failure" and status.report is not None
    assert status.report.command == "echo checking; exit 3" and status.report.exit_code == 3
    assert not status.report.per_test and "checking" in status.report.log_tail
    deps.ci.close()


@pytest.mark.parametrize(("arguments", "expected"), [({"wait_s": -1}, "wait_s"), ({"wait_s": 601}, "wait_s")])
async def test_bad_ci_requests_are_refused(green: ServerDeps, alice: Actor, arguments: dict[str, Any],
                                           expected: str) -> None:  # fmt: skip
    task = green.tasks.start("bad", alice)
    async with Client(create_server(green)) as client:
        result = await client.call_tool("ci_status", {"task_id": task.id, **arguments})
    assert result.is_error and expected in result.content[0].text
    assert [e.action for e in green.tasks.store.events(task.id)] == ["created"]


async def test_ci_for_an_ended_task_is_refused(green: ServerDeps, alice: Actor) -> None:
    task = green.tasks.start("gone", alice)
    green.tasks.abort(task.id, "not needed", alice)
    async with Client(create_server(green)) as client:
        result = await client.call_tool("ci_status", {"task_id": task.id})
    assert result.is_error and "already ended" in result.content[0].text


def test_cli_ci_status_waits_and_exits_by_result(tmp_path: Path, alice: Actor) -> None:
    repo = green_sample(tmp_path / "repo")
    deps = open_deps(load_settings(repo=repo))
    task = deps.tasks.start("cli", alice)
    deps.tasks.store.close()
    result = shipway("ci", "status", task.id, "--repo", str(repo), env={"SHIPWAY_TEST_PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("CI SUCCESS  local on ")
