"""Sample repositories from examples/, copied into a temporary directory and committed."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.gitrepo import git

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def sample_repo(name: str, dest: Path) -> Path:
    """A git repository holding a copy of examples/<name>, committed on main."""
    shutil.copytree(EXAMPLES / name, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", ".")
    git(dest, "commit", "-q", "-m", f"sample {name}")
    return dest


def commit_file(repo: Path, path: str, text: str, message: str = "change") -> str:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
