"""Task branches shared through the team's artifacts bucket, so any machine can take a task over.

A task's work is the commits on branch `shipway/<task>`, made in the repository of the machine
whose worker holds the task. When that worker dies, a worker on another machine resumes the
task and needs those commits. So every commit that moves the branch is published before the
event that names it is recorded:

- `branches/<task>/<commit>.bundle`: a git bundle of `base..commit` (what a machine with the
  base commit needs to rebuild the branch), keyed by commit so a later publish never replaces
  what an earlier event names;
- `diffs/<task>/<commit>.patch`: the commit as a mail-style patch, for people.

The task's hash-chained event log says which commit the branch is at (the last `edit_applied`
or `edit_reverted`). Before a tool touches the branch, `bring` makes the local branch agree:

- at the recorded head, or ahead of it with a commit the log has never named (this machine is
  between making a commit and recording it, or crashed there; the edit tool reports a repeated
  edit as already applied), it is left alone;
- otherwise (behind, diverged, or at a commit the log has since moved away from, as after a
  revert) the bundle is fetched when the commit is missing, the task's local worktree is
  dropped (anything in it was never recorded), and the branch is set to the recorded head.

A fetched bundle is trusted no further than its commit id: the branch is set to the id the log
names, and git verifies every object's hash as it fetches.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mcp_server.artifacts import S3Artifacts
from mcp_server.errors import StoreError
from mcp_server.tasks.model import Event, Task
from sandbox.host_git import GitError, driver_overrides, git_argv, git_env, run_git
from sandbox.worktree import BRANCH_PREFIX, WorktreeManager

ZERO = "0" * 40
PUBLISH_REF = "refs/shipway/publish/"
INCOMING_REF = "refs/shipway/incoming/"


def recorded_heads(events: Sequence[Event]) -> tuple[str | None, set[str]]:
    """The branch head the log names last (None: no commit yet), and every head it ever named."""
    heads = []
    for event in events:
        if event.action == "edit_applied" and event.payload.get("commit"):
            heads.append(str(event.payload["commit"]))
        elif event.action == "edit_reverted" and event.payload.get("head_commit"):
            heads.append(str(event.payload["head_commit"]))
    return (heads[-1] if heads else None), set(heads)


class SharedBranches:
    def __init__(self, artifacts: S3Artifacts) -> None:
        self.artifacts = artifacts

    @staticmethod
    def bundle_name(task_id: str, commit: str) -> str:
        return f"branches/{task_id}/{commit}.bundle"

    @staticmethod
    def patch_name(task_id: str, commit: str) -> str:
        return f"diffs/{task_id}/{commit}.patch"

    def publish(self, repo: Path, task: Task, commit: str) -> None:
        """Upload `commit` of the task's branch (call it before recording the event that names it)."""
        if commit == task.base_commit:
            return  # the base is in every clone
        overrides = driver_overrides(repo)
        ref = PUBLISH_REF + task.id
        with tempfile.TemporaryDirectory(prefix="shipway-bundle-") as scratch:
            bundle = Path(scratch) / "branch.bundle"
            try:
                run_git(repo, "update-ref", ref, commit)
                run_git(repo, "bundle", "create", "--quiet", str(bundle), ref, f"^{task.base_commit}",
                        overrides=overrides)  # fmt: skip
            finally:
                run_git(repo, "update-ref", "-d", ref, check=False)
            self.artifacts.put(self.bundle_name(task.id, commit), bundle.read_bytes(), "application/x-git-bundle")
        patch = subprocess.run([*git_argv(repo, *overrides, "format-patch", "-1", "--stdout", "--no-signature",
                                          "--no-color", "--binary", commit)],
                               capture_output=True, env=git_env(), timeout=120, check=False)  # fmt: skip
        if patch.returncode == 0:  # the bundle is what matters; the patch is for people
            self.artifacts.put(self.patch_name(task.id, commit), patch.stdout, "text/x-patch")

    def bring(self, manager: WorktreeManager, task: Task, events: Sequence[Event]) -> bool:
        """Make the local branch agree with the log (see the module's notes); True when it moved."""
        head, named = recorded_heads(events)
        head = head or task.base_commit
        repo = manager.repo
        if not self._has_commit(repo, task.base_commit):
            raise StoreError(f"task {task.id}'s base commit {task.base_commit[:12]} is not in {repo}; fetch it "
                             "there (git fetch origin) so this machine can work on the task")  # fmt: skip
        branch = f"refs/heads/{BRANCH_PREFIX}{task.id}"
        found = run_git(repo, "rev-parse", "--verify", "--quiet", branch, check=False)
        local = found.stdout.strip() if found.returncode == 0 else None
        if local is None and head == task.base_commit:
            return False  # nothing committed yet: the worktree starts from the base as usual
        if local == head or (local is not None and local not in named and self._contains(repo, local, head)):
            return False
        if not self._has_commit(repo, head):
            self._fetch(repo, task, head)
        manager.remove(task.id)  # its files belong to a run the log does not know
        try:
            run_git(repo, "update-ref", "-m", "shipway: the head the task's log names", branch, head, local or ZERO)
        except GitError as exc:
            raise StoreError(f"could not move {BRANCH_PREFIX}{task.id} to {head[:12]} in {repo}: {exc}") from exc
        return True

    @staticmethod
    def _has_commit(repo: Path, commit: str) -> bool:
        return run_git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode == 0

    @staticmethod
    def _contains(repo: Path, tip: str, commit: str) -> bool:
        return run_git(repo, "merge-base", "--is-ancestor", commit, tip, check=False).returncode == 0

    def _fetch(self, repo: Path, task: Task, commit: str) -> None:
        name = self.bundle_name(task.id, commit)
        data = self.artifacts.get(name)
        if data is None:
            raise StoreError(f"commit {commit[:12]} of task {task.id} is neither in {repo} nor at "
                             f"{self.artifacts.url(name)}; the machine that made it did not publish it")  # fmt: skip
        ref = INCOMING_REF + task.id
        with tempfile.TemporaryDirectory(prefix="shipway-bundle-") as scratch:
            bundle = Path(scratch) / "branch.bundle"
            bundle.write_bytes(data)
            try:
                checked = run_git(repo, "bundle", "verify", "--quiet", str(bundle), check=False)
                if checked.returncode != 0:
                    raise StoreError(f"the bundle {self.artifacts.url(name)} does not apply to {repo}: "
                                     f"{(checked.stderr or checked.stdout).strip()[:300]} (is the base commit "
                                     f"{task.base_commit[:12]} there? git fetch origin)")  # fmt: skip
                run_git(repo, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(bundle),
                        f"+{PUBLISH_REF}{task.id}:{ref}", overrides=driver_overrides(repo))  # fmt: skip
            except GitError as exc:
                raise StoreError(f"could not fetch {self.artifacts.url(name)} into {repo}: {exc}") from exc
            finally:
                run_git(repo, "update-ref", "-d", ref, check=False)
        if not self._has_commit(repo, commit):
            raise StoreError(f"{self.artifacts.url(name)} does not hold commit {commit[:12]}; it was not made by "
                             "Shipway or was changed")  # fmt: skip
