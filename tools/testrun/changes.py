"""What changed in a checkout since a commit, read with hardened host-side git."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox.host_git import GitError

Git = Callable[..., str]
"""Runs `git <args>` on the checkout (hardened, with driver overrides) and returns stdout."""


@dataclass(frozen=True)
class TreeState:
    head: str
    dirty: bool
    changed: list[str]
    """Paths that differ from the base commit: committed, uncommitted or untracked (renames as both paths)."""
    files: list[str]
    """Every file of the checkout git knows or would add (tracked, plus untracked not ignored)."""


def _paths(output: str) -> list[str]:
    return [p for p in output.split("\0") if p]


def tree_state(git: Git, base: str | None) -> TreeState:
    head = git("rev-parse", "HEAD").strip()
    untracked = _paths(git("ls-files", "--others", "--exclude-standard", "-z"))
    tracked = _paths(git("ls-files", "--cached", "-z"))
    dirty = bool(git("status", "--porcelain", "--untracked-files=normal").strip())
    changed: list[str] = []
    if base is not None:
        changed = _paths(git("diff", "--name-only", "--no-renames", "--no-ext-diff", "--no-textconv", "-z", base))
    return TreeState(head=head, dirty=dirty, changed=sorted(set(changed) | set(untracked)),
                     files=sorted(set(tracked) | set(untracked)))  # fmt: skip


def file_at(git: Git, commit: str, path: str, limit: int = 1 << 20) -> str | None:
    """The text of `path` at `commit`, or None when it is not there (or too big)."""
    try:
        size = int(git("cat-file", "-s", f"{commit}:{path}").strip())
    except (ValueError, GitError):  # a missing path is an ordinary answer here
        return None
    if size > limit:
        return None
    return git("show", f"{commit}:{path}")


def exists_at(git: Git, commit: str, paths: list[str]) -> set[str]:
    """Which of `paths` (files or directories) exist at `commit`."""
    if not paths:
        return set()
    listed = _paths(git("ls-tree", "-r", "--name-only", "-z", commit))
    files = set(listed)
    dirs = {"/".join(p.split("/")[:i]) for p in listed for i in range(1, p.count("/") + 1)}
    return {p for p in paths if p.rstrip("/") in files or p.rstrip("/") in dirs or p in ("", ".")}
