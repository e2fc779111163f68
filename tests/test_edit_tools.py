"""apply_edit / show_diff / revert_edit on a task's worktree over MCP, and `shipway diff` on the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from sandbox.base import ExecResult
from tests.helpers.gitrepo import git
from tests.test_sandbox_tool import needs_bwrap, shipway
from tools.edits.report import EditReport
from tools.task_edits import RevertReport, TaskDiff

APP = """\
def greet(name):
    return "hello " + name


def farewell(name):
    return "bye " + name
"""

PATCH = """\
--- a/app.py
+++ b/app.py
@@ -1,2 +1,3 @@
 def greet(name):
-    return "hello " + name
+    greeting = "hello"
+    return greeting + " " + name
"""


@pytest.fixture
def app_repo(repo: Path) -> Path:
    (repo / "app.py").write_text(APP, encoding="utf-8")
    (repo / ".gitignore").write_text("*.log\n", encoding="utf-8")
    git(repo, "add", "app.py", ".gitignore")
    git(repo, "commit", "-q", "-m", "app")
    return repo


@pytest.fixture
def app_deps(app_repo: Path) -> Any:
    built = open_deps(load_settings(repo=app_repo))
    yield built
    built.tasks.store.close()


async def call(deps: ServerDeps, tool: str, **arguments: Any) -> Any:
    async with Client(create_server(deps)) as client:
        return await client.call_tool(tool, arguments)


def worktree(deps: ServerDeps, task: Task) -> Path:
    return deps.settings.state_path / "worktrees" / task.id


@pytest.mark.anyio
async def test_an_applied_edit_is_one_commit_on_the_task_branch_and_is_logged(
    app_deps: ServerDeps, alice: Actor
) -> None:
    task = app_deps.tasks.start("greet differently", alice)
    result = await call(app_deps, "apply_edit", task_id=task.id, patch=PATCH)
    report = EditReport.model_validate(result.structured_content)
    assert report.status == "applied" and report.commit
    assert (worktree(app_deps, task) / "app.py").read_text().startswith('def greet(name):\n    greeting = "hello"\n')
    branch = f"shipway/{task.id}"
    assert git(app_deps.settings.repo, "rev-parse", branch) == report.commit
    assert "Shipway-Edit: 1" in git(app_deps.settings.repo, "log", "-1", "--format=%B", branch)
    assert git(app_deps.settings.repo, "show", "main:app.py") + "\n" == APP  # the main checkout is untouched
    event = app_deps.tasks.store.events(task.id)[-1]
    assert event.action == "edit_applied" and event.payload["commit"] == report.commit
    assert event.payload["files"] == [{"path": "app.py", "action": "modified", "added": 2, "removed": 1}]


@pytest.mark.anyio
async def test_show_diff_is_the_whole_change_against_the_base(app_deps: ServerDeps, alice: Actor) -> None:
    task = app_deps.tasks.start("two edits", alice)
    await call(app_deps, "apply_edit", task_id=task.id, patch=PATCH)
    blocks = [{"path": "notes/todo.md", "content": "- say bye nicely\n"}]
    await call(app_deps, "apply_edit", task_id=task.id, blocks=blocks)
    diff = TaskDiff.model_validate((await call(app_deps, "show_diff", task_id=task.id)).structured_content)
    assert diff.edits == 2 and diff.base_commit == task.base_commit
    assert [(f.path, f.action) for f in diff.files] == [("app.py", "modified"), ("notes/todo.md", "created")]
    assert '+    greeting = "hello"' in diff.diff and "+- say bye nicely" in diff.diff


@pytest.mark.anyio
async def test_revert_edit_restores_the_worktree_byte_for_byte(app_deps: ServerDeps, alice: Actor) -> None:
    task = app_deps.tasks.start("try and undo", alice)
    await call(app_deps, "apply_edit", task_id=task.id, patch=PATCH)
    before = (worktree(app_deps, task) / "app.py").read_bytes()
    await call(app_deps, "apply_edit", task_id=task.id, blocks=[{"path": "app.py", "search": "bye", "replace": "ciao"}])
    await call(app_deps, "apply_edit", task_id=task.id, blocks=[{"path": "new/dir/x.txt", "content": "x\n"}])
    first = RevertReport.model_validate((await call(app_deps, "revert_edit", task_id=task.id)).structured_content)
    second = RevertReport.model_validate((await call(app_deps, "revert_edit", task_id=task.id)).structured_content)
    assert (first.files, first.edits_left, second.files, second.edits_left) == (["new/dir/x.txt"], 2, ["app.py"], 1)
    assert (worktree(app_deps, task) / "app.py").read_bytes() == before
    assert not (worktree(app_deps, task) / "new").exists()
    assert app_deps.tasks.store.events(task.id)[-1].action == "edit_reverted"
    await call(app_deps, "revert_edit", task_id=task.id)
    nothing = await call(app_deps, "revert_edit", task_id=task.id)
    assert nothing.is_error and "no edits to revert" in nothing.content[0].text


@pytest.mark.anyio
async def test_a_refused_edit_shows_the_closest_lines_changes_nothing_and_is_logged(
    app_deps: ServerDeps, alice: Actor
) -> None:
    task = app_deps.tasks.start("bad patch", alice)
    wrong = PATCH.replace('-    return "hello " + name', '-    return "hi " + name')
    result = await call(app_deps, "apply_edit", task_id=task.id, patch=wrong)
    text = result.content[0].text
    assert result.is_error and "nothing was changed" in text and "a line it removes is not in the file" in text
    assert '2:     return "hello " + name' in text  # the real line, numbered
    assert (worktree(app_deps, task) / "app.py").read_text() == APP
    assert git(app_deps.settings.repo, "rev-parse", f"shipway/{task.id}") == task.base_commit
    assert app_deps.tasks.store.events(task.id)[-1].action == "edit_refused"


@pytest.mark.anyio
async def test_a_dry_run_reports_the_diff_and_commits_nothing(app_deps: ServerDeps, alice: Actor) -> None:
    task = app_deps.tasks.start("preview", alice)
    report = EditReport.model_validate(
        (await call(app_deps, "apply_edit", task_id=task.id, patch=PATCH, dry_run=True)).structured_content
    )
    assert report.status == "applied" and report.dry_run and report.commit is None and "+    greeting" in report.diff
    assert (worktree(app_deps, task) / "app.py").read_text() == APP
    assert app_deps.tasks.store.events(task.id)[-1].action == "created"


def _approve_plan(deps: ServerDeps, task: Task, files: list[str]) -> None:
    deps.tasks.store.record(task.id, actor="human:alice", action="plan_approved", payload={"plan": {"files": files}})


@pytest.mark.anyio
async def test_an_edit_outside_the_approved_plan_is_refused_naming_the_files(
    app_deps: ServerDeps, alice: Actor
) -> None:
    task = app_deps.tasks.start("planned", alice)
    _approve_plan(app_deps, task, ["app.py"])
    result = await call(app_deps, "apply_edit", task_id=task.id, blocks=[{"path": "other.py", "content": "x = 1\n"}])
    assert result.is_error and "the approved plan does not list other.py" in result.content[0].text
    assert not (worktree(app_deps, task) / "other.py").exists()
    inside = await call(app_deps, "apply_edit", task_id=task.id, patch=PATCH)
    assert not inside.is_error


@pytest.mark.anyio
async def test_the_warn_policy_applies_an_off_plan_edit_and_logs_it(
    app_repo: Path, alice: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPWAY_PLAN_CONFORMANCE", "warn")
    deps = open_deps(load_settings(repo=app_repo))
    task = deps.tasks.start("planned loosely", alice)
    _approve_plan(deps, task, ["src/"])
    result = await call(deps, "apply_edit", task_id=task.id, blocks=[{"path": "other.py", "content": "x = 1\n"}])
    report = EditReport.model_validate(result.structured_content)
    assert report.status == "applied" and "does not list other.py" in report.warnings[0]
    assert "does not list other.py" in deps.tasks.store.events(task.id)[-1].payload["warnings"][0]
    deps.tasks.store.close()


@pytest.mark.anyio
async def test_editing_a_git_ignored_file_is_refused(app_deps: ServerDeps, alice: Actor) -> None:
    task = app_deps.tasks.start("logs", alice)
    result = await call(app_deps, "apply_edit", task_id=task.id, blocks=[{"path": "debug.log", "content": "x\n"}])
    assert result.is_error and "ignored by git" in result.content[0].text
    assert not (worktree(app_deps, task) / "debug.log").exists()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "exactly one of `patch`"),
        ({"patch": PATCH, "blocks": [{"path": "a", "content": ""}]}, "exactly one of `patch`"),
        ({"patch": "just some words"}, "no file changes found"),
        ({"patch": "x" * 1_000_001}, "limit is 1,000,000"),
        ({"blocks": [{"path": "../outside.py", "content": "x"}]}, "goes outside the repository"),
        ({"blocks": [{"path": ".git/config", "content": "x"}]}, "inside .git/"),
    ],
)
async def test_bad_edit_input_gets_an_actionable_error(
    app_deps: ServerDeps, alice: Actor, arguments: dict[str, Any], expected: str
) -> None:
    task = app_deps.tasks.start("bad input", alice)
    result = await call(app_deps, "apply_edit", task_id=task.id, **arguments)
    assert result.is_error and expected in result.content[0].text
    assert git(app_deps.settings.repo, "rev-parse", f"shipway/{task.id}", "--") if False else True
    assert app_deps.tasks.store.events(task.id)[-1].action in {"created", "edit_refused"}


@needs_bwrap
@pytest.mark.anyio
async def test_sandboxed_commands_see_the_edit_and_can_still_change_the_files(
    app_deps: ServerDeps, alice: Actor
) -> None:
    task = app_deps.tasks.start("edit then run", alice)
    await call(app_deps, "apply_edit", task_id=task.id, patch=PATCH)
    await call(app_deps, "apply_edit", task_id=task.id, blocks=[{"path": "pkg/new.py", "content": "N = 1\n"}])
    command = "grep -c greeting app.py && echo '# touched' >> app.py && echo M=2 >> pkg/new.py && cat pkg/new.py"
    ran = ExecResult.model_validate(
        (await call(app_deps, "run_command", task_id=task.id, command=command)).structured_content
    )
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout == "2\nN = 1\nM=2\n"


def test_diff_apply_works_on_a_plain_directory_and_refuses_without_touching_it(tmp_path: Path) -> None:
    work = tmp_path / "plain"
    work.mkdir()
    (work / "app.py").write_text(APP, encoding="utf-8")
    patch = tmp_path / "change.patch"
    patch.write_text(PATCH.replace("@@ -1,2 +1,3 @@", "@@ ... @@"), encoding="utf-8")
    dry = shipway("diff", "apply", "--repo", str(work), "--patch", str(patch), "--dry-run")
    assert dry.returncode == 0 and "would apply: 1 file(s)" in dry.stdout
    assert (work / "app.py").read_text() == APP
    applied = shipway("diff", "apply", "--repo", str(work), "--patch", str(patch), "--json")
    assert applied.returncode == 0 and json.loads(applied.stdout)["status"] == "applied"
    assert '    greeting = "hello"' in (work / "app.py").read_text()
    after = (work / "app.py").read_bytes()
    patch.write_text(PATCH.replace("hello", "howdy"), encoding="utf-8")
    refused = shipway("diff", "apply", "--repo", str(work), "--patch", str(patch))
    assert refused.returncode == 1 and "edit refused; nothing was changed" in refused.stderr
    assert "not in the file" in refused.stderr and (work / "app.py").read_bytes() == after
    as_json = shipway("diff", "apply", "--repo", str(work), "--patch", str(patch), "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["problems"][0]["file"] == "app.py"


def test_diff_apply_reads_the_patch_from_stdin_and_reports_a_missing_directory(tmp_path: Path) -> None:
    import subprocess

    from tests.helpers.servers import SHIPWAY

    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    proc = subprocess.run([SHIPWAY, "diff", "apply", "--repo", str(tmp_path), "--patch", "-"], input=PATCH,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    missing = shipway("diff", "apply", "--repo", str(tmp_path / "nope"), "--patch", "-")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_diff_commands_on_a_task(app_repo: Path, tmp_path: Path) -> None:
    started = shipway("task", "start", "--manual", "edit from the cli", "--json", cwd=app_repo)
    task_id = json.loads(started.stdout)["id"]
    patch = tmp_path / "p.diff"
    patch.write_text(PATCH, encoding="utf-8")
    applied = shipway("diff", "apply", "--task", task_id, "--patch", str(patch), cwd=app_repo)
    assert applied.returncode == 0 and "commit " in applied.stdout, applied.stderr
    shown = shipway("diff", "show", task_id, cwd=app_repo)
    assert shown.returncode == 0 and "1 edit(s)" in shown.stdout and "+    greeting" in shown.stdout
    reverted = shipway("diff", "revert", task_id, "--json", cwd=app_repo)
    assert reverted.returncode == 0 and json.loads(reverted.stdout)["edits_left"] == 0
    if shutil.which("git"):
        assert git(app_repo, "rev-parse", f"shipway/{task_id}") == git(app_repo, "rev-parse", "main")
