"""Edits on a task's worktree: each applied edit is one commit on the task branch.

`apply_edit` runs the edit engine on the worktree and commits exactly the files it touched
(other uncommitted changes, e.g. from commands, stay as they are). `show_diff` is the task's
cumulative change against its base commit. `revert_edit` undoes the newest edit commit with
`git reset --keep`, which refuses rather than overwrite local changes to the same files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from sandbox.host_git import GitError, driver_overrides
from sandbox.worktree import COMMITTER, Worktree
from tools.edits.blocks import EditBlock
from tools.edits.engine import run_edit
from tools.edits.report import Action, EditReport, FileChange
from tools.errors import ToolInputError

EDIT_TRAILER = "Shipway-Edit"
MAX_DIFF_CHARS = 100_000
_STATUS: dict[str, Action] = {"M": "modified", "A": "created", "D": "deleted", "R": "renamed", "T": "modified"}


class TaskDiff(BaseModel):
    base_commit: str
    head_commit: str
    edits: int = Field(description="Edit commits on the task branch")
    files: list[FileChange]
    diff: str = Field(description="Unified diff of the task branch against its base")
    truncated: bool = False
    uncommitted: list[str] = Field(default_factory=list, description="Worktree changes not in any edit (from commands)")


class RevertReport(BaseModel):
    reverted_commit: str
    head_commit: str
    files: list[str]
    edits_left: int


def _touched(report: EditReport) -> list[str]:
    paths = [change.path for change in report.files]
    paths += [change.old_path for change in report.files if change.old_path]
    return sorted(set(paths))


def _ignored(worktree: Worktree, paths: Sequence[str]) -> list[str]:
    found = worktree.git("check-ignore", "--no-index", "--", *paths, check=False)
    return [line for line in found.splitlines() if line]


def apply_edit(
    worktree: Worktree,
    task_id: str,
    base_commit: str,
    *,
    patch: str | None = None,
    blocks: Sequence[EditBlock] | None = None,
    dry_run: bool = False,
    allowed: Sequence[str] | None = None,
    enforce_allowed: bool = True,
) -> EditReport:
    owner = (worktree.uid, worktree.uid) if worktree.uid is not None else None

    def refuse_ignored(planned: EditReport) -> None:
        ignored = _ignored(worktree, _touched(planned))
        if ignored:
            raise ToolInputError(
                f"{', '.join(ignored)} is ignored by git (.gitignore), and every edit is committed to the task "
                "branch; edit tracked files, or change .gitignore in the same edit"
            )

    report = run_edit(worktree.path, patch=patch, blocks=blocks, dry_run=dry_run, allowed=allowed,
                      enforce_allowed=enforce_allowed, owner=owner, before_write=refuse_ignored)  # fmt: skip
    if report.status == "applied" and not dry_run:
        report.commit = _commit(worktree, task_id, base_commit, report)
    return report


def _commit(worktree: Worktree, task_id: str, base_commit: str, report: EditReport) -> str:
    paths = _touched(report)
    number = edit_count(worktree, base_commit) + 1
    summary = ", ".join(f"{c.path} (+{c.added} -{c.removed})" for c in report.files[:4])
    more = f" and {len(report.files) - 4} more" if len(report.files) > 4 else ""
    message = f"edit {number}: {summary}{more}\n\n{EDIT_TRAILER}: {number}\nShipway-Task: {task_id}\n"
    overrides = driver_overrides(worktree.repo)
    worktree.git("add", "--all", "--", *paths, overrides=overrides)
    worktree.git(*COMMITTER, "commit", "--quiet", "--no-verify", "-m", message, "--", *paths, overrides=overrides)
    return worktree.git("rev-parse", "HEAD").strip()


def edit_count(worktree: Worktree, base_commit: str) -> int:
    """Edit commits on the task branch since its base (never the repository's whole history)."""
    found = worktree.git("log", f"--format=%(trailers:key={EDIT_TRAILER},valueonly)", f"{base_commit}..HEAD",
                         check=False)  # fmt: skip
    return sum(1 for line in found.splitlines() if line.strip())


def show_diff(worktree: Worktree, base_commit: str) -> TaskDiff:
    overrides = driver_overrides(worktree.repo)
    head = worktree.git("rev-parse", "HEAD").strip()
    text = worktree.git("diff", "--no-color", "--no-ext-diff", "-M", base_commit, head, overrides=overrides)
    truncated = len(text) > MAX_DIFF_CHARS
    if truncated:
        text = text[:MAX_DIFF_CHARS] + "\n… diff truncated; run `git diff` in the worktree for the rest\n"
    status = worktree.git("status", "--porcelain", "--untracked-files=all", overrides=overrides)
    return TaskDiff(
        base_commit=base_commit,
        head_commit=head,
        edits=edit_count(worktree, base_commit),
        files=_changed_files(worktree, base_commit, head),
        diff=text,
        truncated=truncated,
        uncommitted=[line[3:] for line in status.splitlines() if len(line) > 3],
    )


def _changed_files(worktree: Worktree, base: str, head: str) -> list[FileChange]:
    numstat = worktree.git("diff", "--numstat", "-M", "-z", base, head)
    names = worktree.git("diff", "--name-status", "-M", "-z", base, head).split("\0")
    counts = _numstat_counts(numstat)
    files: list[FileChange] = []
    i = 0
    while i < len(names) and names[i]:
        code = names[i][:1]
        if code in ("R", "C"):
            old, new = names[i + 1], names[i + 2]
            i += 3
        else:
            old, new = None, names[i + 1]
            i += 2
        added, removed = counts.get(new, (0, 0))
        files.append(FileChange(path=new, action=_STATUS.get(code, "modified"), old_path=old, added=added,
                                removed=removed))  # fmt: skip
    return files


def _numstat_counts(numstat: str) -> dict[str, tuple[int, int]]:
    fields = numstat.split("\0")
    counts: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(fields) and fields[i]:
        added, removed, path = fields[i].split("\t", 2)
        if not path:  # a rename: the two paths follow as separate fields
            path = fields[i + 2]
            i += 2
        counts[path] = (int(added) if added.isdigit() else 0, int(removed) if removed.isdigit() else 0)
        i += 1
    return counts


def revert_edit(worktree: Worktree, base_commit: str) -> RevertReport:
    head = worktree.git("rev-parse", "HEAD").strip()
    if head == base_commit or not edit_count(worktree, base_commit):
        raise ToolInputError("the task has no edits to revert; its branch is at the base commit")
    message = worktree.git("log", "-1", "--format=%B", head)
    if f"{EDIT_TRAILER}:" not in message:
        raise ToolInputError("the newest commit on the task branch is not an edit; revert_edit only undoes edits")
    files = [f for f in worktree.git("diff", "--name-only", "-z", f"{head}~1", head).split("\0") if f]
    # Sandboxed commands and chown change files' stat data; refresh so git compares content, not ctime.
    worktree.git("update-index", "-q", "--refresh", check=False, overrides=driver_overrides(worktree.repo))
    try:
        worktree.git("reset", "--quiet", "--keep", f"{head}~1", overrides=driver_overrides(worktree.repo))
    except GitError as exc:
        raise ToolInputError(
            f"cannot revert: files of the last edit have uncommitted changes in the worktree ({exc}); commit or "
            "discard them first"
        ) from exc
    if worktree.uid is not None:
        _give_back(worktree.path, files, worktree.uid)
    return RevertReport(
        reverted_commit=head,
        head_commit=worktree.git("rev-parse", "HEAD").strip(),
        files=files,
        edits_left=edit_count(worktree, base_commit),
    )


def _give_back(root: Path, files: Sequence[str], uid: int) -> None:
    """Files git rewrote as root go back to the sandbox user, so sandboxed commands can change them."""
    for name in files:
        path = root / name
        for target in [path, *path.parents]:
            if target == root or not target.is_relative_to(root):
                break
            if target.exists() and not target.is_symlink():
                os.lchown(target, uid, uid)
