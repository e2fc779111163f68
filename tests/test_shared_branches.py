"""Two machines of a team share task branches and test reports through the artifacts bucket.

Machine A and machine B are two clones of one repository, each with its own state directory,
on one DynamoDB/SQS/S3 (a real moto server). What A commits to a task's branch reaches B as a
git bundle (mcp_server/shared_branches.py); B's branch follows the head the task's log names.
No sandbox is needed: edits and diffs are host git.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from mcp_server.app import ServerDeps, open_deps
from mcp_server.artifacts import S3Artifacts
from mcp_server.config import load_settings
from mcp_server.errors import StoreError
from mcp_server.sqs_queue import SqsAgentQueue
from mcp_server.tasks.dynamo_store import DynamoTaskStore
from mcp_server.tasks.model import Actor, Task
from mcp_server.workspaces import local_repo
from tests.helpers.gitrepo import git, init_repo
from tools.errors import ToolInputError
from tools.testrun.report import TestReport

ALICE = Actor(kind="agent", name="coder")
BUCKET = "team-artifacts"
APP = 'def greet(name):\n    return "hello " + name\n'
FIRST = """\
--- a/app.py
+++ b/app.py
@@ -1,2 +1,2 @@
 def greet(name):
-    return "hello " + name
+    return "hello, " + name
"""
SECOND = """\
--- a/app.py
+++ b/app.py
@@ -1,2 +1,3 @@
 def greet(name):
+    name = name.strip()
     return "hello, " + name
"""


@pytest.fixture
def team(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {"SHIPWAY_STORE": "aws", "SHIPWAY_AWS_ENDPOINT_URL": aws, "SHIPWAY_AWS_TABLE_PREFIX": "team",
                        "SHIPWAY_AWS_ARTIFACTS_BUCKET": BUCKET}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    DynamoTaskStore("team", aws).create_tables()
    SqsAgentQueue("team", aws).create()
    S3Artifacts(BUCKET, "team", aws).create_bucket()
    return aws


@pytest.fixture
def machines(team: str, tmp_path: Path) -> Iterator[tuple[ServerDeps, ServerDeps]]:
    """Machine A (where tasks start) and machine B (a clone made before any task)."""
    repo_a = init_repo(tmp_path / "machine-a")
    (repo_a / "app.py").write_text(APP, encoding="utf-8")
    git(repo_a, "add", "app.py")
    git(repo_a, "commit", "-q", "-m", "app")
    git(tmp_path, "clone", "-q", str(repo_a), "machine-b")
    a, b = open_deps(load_settings(repo=repo_a)), open_deps(load_settings(repo=tmp_path / "machine-b"))
    yield a, b
    for deps in (a, b):
        deps.ci.close()


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint)


def head(deps: ServerDeps, task: Task) -> str | None:
    """The task branch's tip in this machine's clone, read with plain git (None: no branch)."""
    found = git(deps.settings.repo, "for-each-ref", "--format=%(objectname)", f"refs/heads/shipway/{task.id}")
    return found or None


def edit(deps: ServerDeps, task: Task, patch: str) -> str:
    report = deps.workspaces.edit(task.id, ALICE, patch=patch)
    assert report.status == "applied" and report.commit, report
    return report.commit


def test_an_edit_on_one_machine_is_the_same_commit_on_another(
    machines: tuple[ServerDeps, ServerDeps], team: str
) -> None:
    a, b = machines
    task = a.tasks.start("greet with a comma", ALICE)
    commit = edit(a, task, FIRST)
    keys = {o["Key"] for o in s3(team).list_objects_v2(Bucket=BUCKET, Prefix="team/").get("Contents", [])}
    assert {f"team/branches/{task.id}/{commit}.bundle", f"team/diffs/{task.id}/{commit}.patch"} <= keys
    patch = s3(team).get_object(Bucket=BUCKET, Key=f"team/diffs/{task.id}/{commit}.patch")["Body"].read()
    assert b'+    return "hello, " + name' in patch
    assert head(b, task) is None
    shown = b.workspaces.diff(task.id)
    assert head(b, task) == commit
    assert '+    return "hello, " + name' in shown.diff
    assert b.workspaces.repo_of(task) == b.settings.repo != a.settings.repo


def test_a_revert_on_one_machine_moves_the_other_back(machines: tuple[ServerDeps, ServerDeps]) -> None:
    a, b = machines
    task = a.tasks.start("two edits, one undone", ALICE)
    first = edit(a, task, FIRST)
    second = edit(a, task, SECOND)
    assert "name.strip()" in b.workspaces.diff(task.id).diff and head(b, task) == second
    assert a.workspaces.revert(task.id, ALICE).head_commit == first
    assert "name.strip()" not in b.workspaces.diff(task.id).diff
    assert head(b, task) == first
    assert b.workspaces.branch_head(b.tasks.get(task.id)) == first


def test_a_commit_the_log_never_named_is_left_alone_until_the_log_moves_past_it(
    machines: tuple[ServerDeps, ServerDeps],
) -> None:
    a, b = machines
    task = a.tasks.start("a stray commit on B", ALICE)
    edit(a, task, FIRST)
    b.workspaces.diff(task.id)  # B now has the task's worktree on the first commit
    worktree = b.settings.state_path / "worktrees" / task.id
    (worktree / "stray.txt").write_text("made on B, never recorded\n", encoding="utf-8")
    trusted = ("-c", "safe.directory=*")  # the worktree belongs to the sandbox's uid
    git(worktree, *trusted, "add", "stray.txt")
    git(worktree, *trusted, "commit", "-q", "-m", "stray")
    stray = git(worktree, *trusted, "rev-parse", "HEAD")
    assert b.workspaces.branch_head(b.tasks.get(task.id)) == stray, "ahead of the log: left for the edit tool"
    assert (worktree / "stray.txt").exists()
    second = edit(a, task, SECOND)  # the log moves on from the first commit, not from B's stray one
    assert "name.strip()" in b.workspaces.diff(task.id).diff
    assert head(b, task) == second
    assert not (worktree / "stray.txt").exists(), "B's worktree was rebuilt at the recorded head"


def test_a_missing_or_swapped_bundle_is_refused_and_changes_nothing(
    machines: tuple[ServerDeps, ServerDeps], team: str
) -> None:
    a, b = machines
    task = a.tasks.start("a bundle goes astray", ALICE)
    first = edit(a, task, FIRST)
    second = edit(a, task, SECOND)
    bucket = s3(team)
    older = bucket.get_object(Bucket=BUCKET, Key=f"team/branches/{task.id}/{first}.bundle")["Body"].read()
    bucket.put_object(Bucket=BUCKET, Key=f"team/branches/{task.id}/{second}.bundle", Body=older)
    with pytest.raises(StoreError, match=f"does not hold commit {second[:12]}"):
        b.workspaces.diff(task.id)
    assert head(b, task) is None
    bucket.delete_object(Bucket=BUCKET, Key=f"team/branches/{task.id}/{second}.bundle")
    with pytest.raises(StoreError, match=rf"neither in .* nor at s3://{BUCKET}/team/branches/{task.id}/{second}"):
        b.workspaces.diff(task.id)
    assert head(b, task) is None
    assert not (b.settings.state_path / "worktrees" / task.id).exists()


def test_a_clone_without_the_base_commit_is_told_to_fetch(team: str, tmp_path: Path) -> None:
    a = open_deps(load_settings(repo=init_repo(tmp_path / "machine-a")))
    unrelated = init_repo(tmp_path / "unrelated", commit=False)
    (unrelated / "README.md").write_text("# another project\n", encoding="utf-8")
    git(unrelated, "add", "README.md")
    git(unrelated, "commit", "-q", "-m", "another history")
    stranger = open_deps(load_settings(repo=unrelated))
    try:
        task = a.tasks.start("start where B has never been", ALICE)
        with pytest.raises(StoreError, match=r"git fetch origin"):
            stranger.workspaces.diff(task.id)
    finally:
        a.ci.close()
        stranger.ci.close()


def test_an_edit_that_cannot_be_shared_is_undone_and_not_recorded(
    machines: tuple[ServerDeps, ServerDeps], team: str
) -> None:
    a, _ = machines
    task = a.tasks.start("the bucket is gone", ALICE)
    bucket = s3(team)
    for item in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        bucket.delete_object(Bucket=BUCKET, Key=item["Key"])
    bucket.delete_bucket(Bucket=BUCKET)
    with pytest.raises(StoreError, match="the edit was not kept.*shipway tables create"):
        a.workspaces.edit(task.id, ALICE, patch=FIRST)
    assert head(a, task) == task.base_commit
    assert (a.settings.state_path / "worktrees" / task.id / "app.py").read_text(encoding="utf-8") == APP
    assert "edit_applied" not in [e.action for e in a.tasks.store.events(task.id)]


def test_test_reports_and_logs_are_read_on_another_machine(machines: tuple[ServerDeps, ServerDeps]) -> None:
    a, b = machines
    run_id, _ = a.tests.store.new_run(None)
    report = TestReport(run_id=run_id, task_id="t1", framework="pytest", command="pytest -q", selection="full",
                        status="failed", reason=None)  # fmt: skip
    a.tests.store.save(report, "=== 1 failed ===\n")
    assert not (b.tests.store.root / run_id).exists()
    assert b.tests.report(run_id) == report
    assert b.tests.log_text(run_id) == "=== 1 failed ===\n"
    with pytest.raises(ToolInputError, match="no test run 'aaaaaaaaaaaa' here or in s3://"):
        b.tests.report("aaaaaaaaaaaa")
    with pytest.raises(ToolInputError, match="not a test run id"):
        b.tests.log_text("../../etc")


def test_the_bucket_says_what_is_missing_and_how_to_make_it(team: str) -> None:
    artifacts = S3Artifacts("no-such-bucket", "team", team)
    assert S3Artifacts(BUCKET, "team", team).get("nothing/here") is None
    with pytest.raises(StoreError, match="s3://no-such-bucket/team/x.*NoSuchBucket.*shipway tables create"):
        artifacts.put("x", b"1")
    assert artifacts.create_bucket() is True and artifacts.create_bucket() is False


def test_a_team_task_works_in_this_machines_clone_unless_it_names_a_served_repo(team: str, tmp_path: Path) -> None:
    here, extra = init_repo(tmp_path / "here"), init_repo(tmp_path / "extra")
    settings = load_settings(repo=here, extra_repos=[extra])
    task = Task.model_construct(repo="/elsewhere/on/machine-a")
    assert local_repo(task, settings) == here
    assert local_repo(Task.model_construct(repo=str(extra)), settings) == extra
    alone = load_settings(repo=here, store="sqlite")
    assert local_repo(task, alone) == Path("/elsewhere/on/machine-a")
