"""run_command over MCP, `shipway sandbox exec`, worktree lifecycle, unsafe mode, missing bwrap."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from sandbox.base import ExecResult
from sandbox.bubblewrap import BubblewrapSandbox
from sandbox.errors import SandboxUnavailable
from sandbox.unsafe import UnsafeHostSandbox
from tests.helpers.gitrepo import git
from tests.helpers.servers import SHIPWAY

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def shipway(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [SHIPWAY, *args], capture_output=True, text=True, cwd=cwd, timeout=120, env={**os.environ, **(env or {})}
    )


@needs_bwrap
@pytest.mark.anyio
async def test_run_command_runs_in_the_tasks_worktree_and_is_logged(deps: ServerDeps, repo: Path) -> None:
    async with Client(create_server(deps)) as client:
        task = Task.model_validate((await client.call_tool("start_task", {"request": "x"})).structured_content)
        ran = await client.call_tool(
            "run_command", {"task_id": task.id, "command": "cat README.md; echo oops >&2; exit 3"}
        )
        result = ExecResult.model_validate(ran.structured_content)
        again = ExecResult.model_validate(
            (await client.call_tool("run_command", {"task_id": task.id, "command": "pwd"})).structured_content
        )
    assert (result.exit_code, result.stdout, result.stderr, result.sandboxed) == (3, "# sample\n", "oops\n", True)
    assert again.stdout.strip() == str(deps.settings.state_path / "worktrees" / task.id)
    assert git(repo, "branch", "--list", f"shipway/{task.id}")
    last = deps.tasks.store.events(task.id)[-1]
    assert last.action == "command" and last.payload["command"] == "pwd" and last.payload["exit_code"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"command": ""}, "command is empty"),
        ({"command": "x" * 10_001}, "limit is 10,000"),
        ({"command": "true", "timeout_s": 0}, "timeout_s"),
        ({"command": "true", "timeout_s": 5000}, "timeout_s"),
    ],
)
async def test_bad_commands_are_refused_before_anything_runs(
    deps: ServerDeps, alice: Actor, arguments: dict[str, object], expected: str
) -> None:
    task = deps.tasks.start("x", alice)
    async with Client(create_server(deps)) as client:
        result = await client.call_tool("run_command", {"task_id": task.id, **arguments})
    assert result.is_error and expected in result.content[0].text  # type: ignore[union-attr]
    assert len(deps.tasks.store.events(task.id)) == 1
    assert not (deps.settings.state_path / "worktrees" / task.id).exists()


@needs_bwrap
def test_aborting_a_task_removes_its_worktree_but_keeps_its_branch(deps: ServerDeps, alice: Actor, repo: Path) -> None:
    task = deps.tasks.start("x", alice)
    deps.workspaces.run(task.id, "echo work > work.txt", 30, alice)
    worktree = deps.settings.state_path / "worktrees" / task.id
    assert (worktree / "work.txt").exists()
    deps.tasks.abort(task.id, "done here", alice)
    assert not worktree.exists()
    assert git(repo, "worktree", "list").count("\n") == 0
    assert git(repo, "branch", "--list", f"shipway/{task.id}")
    with pytest.raises(Exception, match="already ended"):
        deps.workspaces.run(task.id, "true", 30, alice)


@needs_bwrap
def test_sandbox_exec_runs_over_a_throwaway_worktree_and_exits_with_the_commands_status(repo: Path) -> None:
    (repo / "uncommitted.txt").write_text("not in HEAD\n", encoding="utf-8")
    proc = shipway("sandbox", "exec", "--repo", str(repo), "--", "sh", "-c", "ls; echo err >&2; exit 7")
    assert proc.returncode == 7 and proc.stdout.split() == ["README.md"] and proc.stderr == "err\n"
    assert git(repo, "worktree", "list").count("\n") == 0
    timed = shipway("sandbox", "exec", "--repo", str(repo), "--timeout", "1", "--json", "--", "sleep", "10")
    assert timed.returncode == 124 and json.loads(timed.stdout)["timed_out"] is True


@needs_bwrap
def test_sandbox_exec_on_a_task_uses_its_worktree(repo: Path) -> None:
    task = json.loads(shipway("task", "start", "--manual", "x", "--repo", str(repo), "--json").stdout)
    shipway("sandbox", "exec", "--repo", str(repo), "--task", task["id"], "--", "sh", "-c", "echo 1 > mark")
    shown = shipway("sandbox", "exec", "--repo", str(repo), "--task", task["id"][:6], "--", "cat", "mark")
    assert shown.returncode == 0 and shown.stdout == "1\n"


def test_without_bubblewrap_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SandboxUnavailable) as info:
        BubblewrapSandbox()
    for hint in ("apt-get install bubblewrap", "dnf install bubblewrap", "pacman -S bubblewrap"):
        assert hint in str(info.value)


def test_without_bubblewrap_the_cli_fails_in_one_line_and_the_task_tools_still_work(repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "prlimit"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    env = {"PATH": str(bin_dir)}
    proc = shipway("sandbox", "exec", "--repo", str(repo), "--", "true", env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "apt-get install bubblewrap" in proc.stderr
    assert shipway("task", "start", "--manual", "still works", "--repo", str(repo), env=env).returncode == 0


def test_unsafe_mode_runs_unsandboxed_and_every_result_says_so(repo: Path, alice: Actor) -> None:
    deps = open_deps(load_settings(repo=repo, unsafe_no_sandbox=True))
    task = deps.tasks.start("x", alice)
    result = deps.workspaces.run(task.id, "echo hi", 30, alice)
    assert result.stdout == "hi\n" and result.sandboxed is False
    assert result.warning is not None and "UNSANDBOXED" in result.warning
    assert isinstance(deps.workspaces.sandbox, UnsafeHostSandbox)
    assert deps.tasks.store.events(task.id)[-1].payload["sandboxed"] is False


def test_unsafe_mode_is_refused_from_the_repo_file(repo: Path) -> None:
    (repo / "shipway.toml").write_text("unsafe_no_sandbox = true\n", encoding="utf-8")
    with pytest.raises(Exception, match="SHIPWAY_UNSAFE_NO_SANDBOX"):
        load_settings(repo=repo)
