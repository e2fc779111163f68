"""Git on the host, hardened so that a repository can never make us run its code.

A repository's own config can name programs git will execute: hooks, an fsmonitor daemon,
clean/smudge filters, textconv, external diff and merge drivers, signing programs. Shipway
treats repository content as untrusted, so every git command it runs on the host goes
through `run_git`, which switches those off on the command line (command-line `-c` beats
every config file) and drops `GIT_*` variables that could point git at another repository.

Drivers are named by `.gitattributes` (worktree content, which agents write) and defined in
config (global or the repository's). Git has no switch to ignore them all, so
`driver_overrides` reads which ones are defined (reading config runs nothing) and overrides
each: filters become no-ops, textconv becomes `cat`, merge drivers `false` (a conflict the
reviewer resolves rather than a program we run).
"""

from __future__ import annotations

import os
import re
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

_GIT_TIMEOUT_SECONDS = 120
_DRIVER_KEYS = (
    (re.compile(r"^(filter\..+)\.(clean|smudge|process)$"), ""),
    (re.compile(r"^(filter\..+)\.(required)$"), "false"),
    (re.compile(r"^(diff\..+)\.(textconv)$"), "cat"),
    (re.compile(r"^(diff\..+)\.(command)$"), ""),
    (re.compile(r"^(merge\..+)\.(driver)$"), "false"),
)
_ALWAYS = ("-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false", "-c", "diff.external=", "-c", "core.pager=cat")


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


def git_env() -> dict[str, str]:
    """The environment for host git: foreign `GIT_*` variables dropped, prompts and locks off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    return env


def run_git(
    repo: Path, *args: str, check: bool = True, overrides: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `git -C repo <args>` with hooks, fsmonitor and foreign GIT_* variables disabled.

    Commands that read or write worktree files (add, commit, checkout, diff, merge) must
    also pass `overrides=driver_overrides(repo)`.
    """
    cmd = ["git", *HARDENING, *overrides, "-C", str(repo), *args]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=git_env(), timeout=_GIT_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} timed out after {_GIT_TIMEOUT_SECONDS}s") from exc
    if check and proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise GitError(lines[-1] if lines else f"git {args[0]} exited with {proc.returncode}")
    return proc


def git_argv(repo: Path, *args: str) -> list[str]:
    """The hardened argv `run_git` uses, for callers that stream (`cat-file --batch`)."""
    return ["git", *HARDENING, "-C", str(repo), *args]


def driver_overrides(repo: Path) -> tuple[str, ...]:
    """`-c` options that neutralise every filter, textconv, diff and merge driver in config."""
    names = run_git(repo, "config", "--list", "--name-only", check=False).stdout.splitlines()
    options: list[str] = list(_ALWAYS)
    for name in dict.fromkeys(names):
        for pattern, value in _DRIVER_KEYS:
            if pattern.match(name):
                options += ["-c", f"{name}={value}"]
    return tuple(options)


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
