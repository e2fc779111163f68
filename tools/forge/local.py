"""`LocalForge`: the task branch lives in the repository; merging is a real git merge.

Conflicts are predicted with `git merge-tree --write-tree`, which merges in memory and touches
neither refs nor files. A merge builds the result the same way: a fast-forward when the base
has not moved (method `ff`), else a merge commit from the in-memory tree. The base branch then
moves with a compare-and-swap `update-ref`, or, when it is checked out in the main checkout,
with `git merge --ff-only` there, so the user's files follow (git refuses when their local
changes are in the way, and nothing changes).
"""

from __future__ import annotations

from pathlib import Path

from sandbox.host_git import GitError, driver_overrides, run_git
from sandbox.worktree import COMMITTER
from tools.forge.base import ForgeChecks, ForgeReview, Merged, MergeMethod, MergeRefused, Published


class LocalForge:
    name = "local"

    def __init__(self, repo: Path, method: MergeMethod = "merge") -> None:
        self.repo = repo
        self.method = method

    def _git(self, *args: str, check: bool = True) -> str:
        return run_git(self.repo, *args, check=check, overrides=driver_overrides(self.repo)).stdout

    def _branch_head(self, branch: str) -> str:
        try:
            return self._git("rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}").strip()
        except GitError as exc:
            raise MergeRefused(f"the base branch {branch!r} does not exist in {self.repo}") from exc

    def _merge_tree(self, base: str, head: str) -> tuple[str, list[str]]:
        return merge_tree(self.repo, base, head)

    def conflicts(self, base_branch: str, head_sha: str) -> list[str]:
        return self._merge_tree(self._branch_head(base_branch), head_sha)[1]

    # The local forge has no page of its own: reviews happen in Shipway, CI is LocalCI.
    def reviews(self, head_branch: str) -> list[ForgeReview]:
        return []

    def checks(self, head_sha: str) -> ForgeChecks | None:
        return None

    def comment(self, head_branch: str, text: str) -> None:
        return None

    def ready(self, head_branch: str) -> None:
        return None

    def close(self, head_branch: str) -> None:
        return None

    def publish(self, task_id: str, head_branch: str, base_branch: str, title: str, body: str) -> Published:
        self._branch_head(base_branch)  # the record itself lives in the task's event log
        return Published()

    def merge(self, head_branch: str, base_branch: str, head_sha: str, message: str) -> Merged:
        base_sha = self._branch_head(base_branch)
        if self._git("merge-base", base_sha, head_sha).strip() == head_sha:
            raise MergeRefused(f"{base_branch} already contains {head_sha[:12]}; there is nothing to merge")
        tree, conflicted = self._merge_tree(base_sha, head_sha)
        if conflicted:
            raise MergeRefused(f"merging into {base_branch} conflicts in: {', '.join(conflicted[:20])}")
        fast_forward = self.method == "ff" and self._git("merge-base", base_sha, head_sha).strip() == base_sha
        if fast_forward:
            new = head_sha
        else:
            new = self._git(*COMMITTER, "commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m", message).strip()
        self._move(base_branch, base_sha, new)
        return Merged(commit=new, method="fast-forward" if fast_forward else "merge commit")

    def _move(self, branch: str, old: str, new: str) -> None:
        checked_out = self._git("symbolic-ref", "--quiet", "HEAD", check=False).strip() == f"refs/heads/{branch}"
        if not checked_out:
            try:
                self._git("update-ref", f"refs/heads/{branch}", new, old)
            except GitError as exc:
                raise MergeRefused(f"{branch} moved while merging; try again ({exc})") from exc
            return
        # The branch is checked out here: move it with the files, so the checkout stays consistent.
        proc = run_git(self.repo, "merge", "--ff-only", "--no-edit", "--quiet", new, check=False,
                       overrides=driver_overrides(self.repo))  # fmt: skip
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise MergeRefused(
                f"{branch} is checked out in {self.repo} and git would not update it: "
                f"{' '.join(detail[:3])[:400]}; commit or stash the local changes there, then merge again"
            )


def merge_tree(repo: Path, base: str, head: str) -> tuple[str, list[str]]:
    """Merge in memory: the result's tree and the conflicting files (refs and files untouched)."""
    proc = run_git(repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", base, head,
                   check=False, overrides=driver_overrides(repo))  # fmt: skip
    lines = proc.stdout.splitlines()
    if proc.returncode not in (0, 1) or not lines:
        raise MergeRefused(f"git merge-tree failed: {proc.stderr.strip()[:300]}")
    return lines[0].strip(), sorted({line for line in lines[1:] if line.strip()})
