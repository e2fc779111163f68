"""Git on the host, hardened so that a repository can never make us run its code.

A repository's own config can name programs git will execute: hooks, an fsmonitor daemon,
clean/smudge filters, textconv and diff drivers. Shipway treats repository content as
untrusted, so every git command it runs on the host goes through `run_git`, which switches
those off on the command line (command-line `-c` beats every config file) and drops `GIT_*`
variables that could point git at another repository.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Options that neutralise repo-configured executables for read-style commands. Later
# capabilities that check out or diff files add filter/textconv overrides of their own.
HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.untrackedCache=false",
    "-c", "protocol.ext.allow=never",
)  # fmt: skip

_GIT_TIMEOUT_SECONDS = 30


class GitError(Exception):
    """A git command failed; `str()` is git's own one-line reason."""


class NotAGitRepo(GitError):
    """The path is not inside a git working tree."""


@dataclass(frozen=True)
class RepoInfo:
    """What Shipway needs to know about a target repository."""

    root: Path
    head_commit: str | None  # None when the repository has no commits yet
    branch: str | None  # None on a detached HEAD


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    return env


def run_git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `git -C repo <args>` with hooks, fsmonitor and foreign GIT_* variables disabled."""
    cmd = ["git", *HARDENING, "-C", str(repo), *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=_git_env(), timeout=_GIT_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} timed out after {_GIT_TIMEOUT_SECONDS}s") from exc
    if check and proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise GitError(lines[-1] if lines else f"git {args[0]} exited with {proc.returncode}")
    return proc


def inspect_repo(path: Path) -> RepoInfo:
    """Describe the git working tree that contains `path`, or raise NotAGitRepo."""
    if not path.is_dir():
        raise NotAGitRepo(f"{path} is not a directory")
    proc = run_git(path, "rev-parse", "--is-bare-repository", "--show-toplevel", check=False)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines:
        raise NotAGitRepo(f"{path} is not inside a git repository")
    if lines[0] == "true" or len(lines) < 2:
        raise NotAGitRepo(f"{path} is a bare repository; Shipway needs a working tree")
    root = Path(lines[1]).resolve()
    head = run_git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    branch = run_git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return RepoInfo(root=root, head_commit=head.stdout.strip() or None, branch=branch.stdout.strip() or None)
