"""Per-task git worktrees, and the sandbox workspace that exposes exactly one of them.

Each task works in `<state>/worktrees/<task-id>` on branch `shipway/<task-id>`. Inside the
sandbox the task sees that worktree (writable) and the repository's object store (read-only,
so `git status/diff/log` work), with a generated minimal `.git/config` in place of the real
one (remote URLs can carry credentials). The main checkout, the state directory and other
tasks' worktrees are hidden.

Host-side git on a worktree never trusts the worktree's `.git` file (the sandboxed command
can rewrite it to point at a gitdir of its own making): it always names the real gitdir and
work tree explicitly.

When Shipway runs as root, each worktree belongs to an unprivileged uid derived from its
task id; the sandbox runs the task's commands as that uid.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.base import Workspace
from sandbox.errors import WorktreeError
from sandbox.host_git import HARDENING, GitError, driver_overrides, git_env, run_git

BRANCH_PREFIX = "shipway/"
SANDBOX_UID_BASE = 200_000
SANDBOX_UID_SPAN = 100_000
COMMITTER = ("-c", "user.name=Shipway", "-c", "user.email=shipway@localhost")
# Settings copied into the sandbox's view of .git/config; nothing that names a program or a URL.
_SAFE_CONFIG_KEYS = (
    "core.repositoryformatversion",
    "core.filemode",
    "core.symlinks",
    "core.ignorecase",
    "core.precomposeunicode",
    "core.autocrlf",
    "core.eol",
)


def sandbox_uid(key: str) -> int | None:
    """The unprivileged uid for a worktree when running as root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    digest = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return SANDBOX_UID_BASE + digest % SANDBOX_UID_SPAN


@dataclass(frozen=True)
class Worktree:
    repo: Path
    path: Path
    gitdir: Path  # the per-worktree admin dir, <common>/worktrees/<name>
    common_dir: Path  # the repository's .git
    branch: str | None
    uid: int | None

    def git(self, *args: str, check: bool = True, overrides: tuple[str, ...] = ()) -> str:
        """Host-side git on this worktree, with the gitdir named explicitly."""
        explicit = ("--git-dir", str(self.gitdir), "--work-tree", str(self.path))
        return run_git(self.repo, *explicit, *args, check=check, overrides=overrides).stdout


def _chown_tree(root: Path, uid: int) -> None:
    os.lchown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, uid)


class WorktreeManager:
    """Creates, finds and removes the worktrees of one repository."""

    def __init__(self, repo: Path, state_dir: Path) -> None:
        self.repo = repo
        self.state_dir = state_dir
        self.root = state_dir / "worktrees"
        self.common_dir = Path(run_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip())

    def path_for(self, task_id: str) -> Path:
        return self.root / task_id

    def _describe(self, path: Path, branch: str | None, uid: int | None) -> Worktree:
        # git names a worktree's admin dir after the worktree's directory; ours are unique.
        gitdir = self.common_dir / "worktrees" / path.name
        if not gitdir.is_dir():
            raise WorktreeError(f"{path} is not a worktree of {self.repo}")
        return Worktree(self.repo, path, gitdir, self.common_dir, branch, uid)

    def ensure(self, task_id: str, base_commit: str) -> Worktree:
        """The task's worktree on branch shipway/<task-id>, created from `base_commit` if missing."""
        path, branch, uid = self.path_for(task_id), BRANCH_PREFIX + task_id, sandbox_uid(task_id)
        if (self.common_dir / "worktrees" / task_id).is_dir() and path.is_dir():
            return self._describe(path, branch, uid)
        self.root.mkdir(parents=True, exist_ok=True)
        exists = run_git(self.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
        new_branch = () if exists.returncode == 0 else ("-b", branch)
        start = () if exists.returncode == 0 else (base_commit,)
        target = (branch,) if exists.returncode == 0 else ()
        try:
            run_git(self.repo, "worktree", "add", "--quiet", *new_branch, str(path), *target, *start,
                    overrides=driver_overrides(self.repo))  # fmt: skip
        except GitError as exc:
            raise WorktreeError(f"cannot create the worktree for task {task_id}: {exc}") from exc
        if uid is not None:
            _chown_tree(path, uid)
        return self._describe(path, branch, uid)

    @contextlib.contextmanager
    def throwaway(self, ref: str = "HEAD") -> Iterator[Worktree]:
        """A detached worktree of `ref` that is removed afterwards, whatever happens."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="exec-", dir=self.root))
        path.rmdir()
        try:
            run_git(self.repo, "worktree", "add", "--quiet", "--detach", str(path), ref,
                    overrides=driver_overrides(self.repo))  # fmt: skip
        except GitError as exc:
            raise WorktreeError(f"cannot check out {ref}: {exc}") from exc
        try:
            uid = sandbox_uid(path.name)
            if uid is not None:
                _chown_tree(path, uid)
            yield self._describe(path, None, uid)
        finally:
            self._remove_path(path)

    def remove(self, task_id: str) -> bool:
        """Remove the task's worktree (its branch stays); False if there was none."""
        path = self.path_for(task_id)
        if not path.exists() and not (self.common_dir / "worktrees" / task_id).exists():
            return False
        self._remove_path(path)
        return True

    def _remove_path(self, path: Path) -> None:
        # Delete the files ourselves first: `git worktree remove` would consult the worktree's
        # own (sandbox-writable) .git file and index.
        shutil.rmtree(path, ignore_errors=True)
        run_git(self.repo, "worktree", "prune", check=False)

    def snapshot(self, commit: str, dest: Path, uid: int | None) -> list[str]:
        """The files of `commit` in a fresh directory `dest` (no .git), owned by `uid` when given;
        returns the paths left out.

        `git archive` runs hardened (no filters or hooks) and the tar is unpacked with the
        `data` filter: no device files, no set-id bits, and a link pointing out of `dest`
        (a committed `dist/leak -> /etc/passwd`) is left out rather than followed."""
        skipped: list[str] = []

        def keep_safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
            try:
                return tarfile.data_filter(member, path)
            except tarfile.FilterError:
                skipped.append(member.name)
                return None

        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        argv = ["git", *HARDENING, *driver_overrides(self.repo), "-C", str(self.repo), "archive", "--format=tar"]
        argv.append(commit)
        with tempfile.TemporaryFile() as archive:
            done = subprocess.run(argv, stdout=archive, stderr=subprocess.PIPE, env=git_env(), timeout=300, check=False)
            if done.returncode != 0:
                lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
                raise WorktreeError(f"cannot read commit {commit[:12]}: {lines[-1] if lines else 'git archive failed'}")
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:") as tar:
                tar.extractall(dest, filter=keep_safe)  # noqa: S202 - keep_safe is the data filter, skipping
        if uid is not None:
            _chown_tree(dest, uid)
        return skipped

    def commit_all(self, worktree: Worktree, message: str) -> str | None:
        """Commit everything in the worktree on the host, hardened; the new sha, or None if clean."""
        overrides = driver_overrides(self.repo)
        worktree.git("add", "--all", overrides=overrides)
        if not worktree.git("status", "--porcelain", overrides=overrides).strip():
            return None
        worktree.git(*COMMITTER, "commit", "--quiet", "--no-verify", "-m", message, overrides=overrides)
        return worktree.git("rev-parse", "HEAD", overrides=overrides).strip()

    def workspace(self, worktree: Worktree) -> Workspace:
        """What the sandbox shows a command working in `worktree`."""
        config = self._sandbox_config(worktree)
        return Workspace(
            workdir=worktree.path,
            hidden=(self.repo, self.state_dir, self.common_dir),
            readonly=((self.common_dir, self.common_dir),),
            readonly_files=((config, self.common_dir / "config"),),
            uid=worktree.uid,
        )

    def _sandbox_config(self, worktree: Worktree) -> Path:
        pattern = "^(" + "|".join(key.replace(".", r"\.") for key in _SAFE_CONFIG_KEYS) + r"|extensions\..*)$"
        found = run_git(self.repo, "config", "--get-regexp", pattern, check=False).stdout.splitlines()
        pairs = [line.split(" ", 1) for line in found if " " in line]
        core = [f"\t{name.split('.', 1)[1]} = {value}" for name, value in pairs if name.startswith("core.")]
        extensions = [f"\t{name.split('.', 1)[1]} = {value}" for name, value in pairs if name.startswith("extensions.")]
        lines = ["[core]", "\tbare = false", *core]
        if extensions:
            lines += ["[extensions]", *extensions]
        target = self.state_dir / "sandbox" / f"{worktree.path.name}.gitconfig"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return target
