"""Code planted by a sandboxed command must never run when Shipway uses git on the host."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.helpers.gitrepo import git
from tests.security.conftest import Box


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / f"ran-{uuid.uuid4().hex[:8]}"


def test_a_gitdir_planted_in_the_worktree_is_ignored_by_host_commits(box: Box, canary: Path) -> None:
    # The command rewrites the worktree's .git pointer to a gitdir of its own, with a hook and
    # an fsmonitor; the host commit must use the real gitdir and run neither.
    box.sh(
        'mkdir -p evil/hooks && cp -r "$(git rev-parse --git-dir)"/* evil/ 2>/dev/null; '
        f"printf '#!/bin/sh\\ntouch {canary}\\n' > evil/hooks/pre-commit; chmod +x evil/hooks/pre-commit; "
        f"printf '[core]\\n\\tfsmonitor = touch {canary}\\n\\thooksPath = evil/hooks\\n' > evil/config; "
        "echo 'gitdir: evil' > .git; echo change > file.txt"
    )
    sha = box.manager.commit_all(box.worktree, "after planting")
    assert not canary.exists()
    assert sha is not None and git(box.repo, "rev-parse", f"shipway/{box.task.id}") == sha


def test_a_gitattributes_filter_planted_against_a_configured_driver_does_not_run(box: Box, canary: Path) -> None:
    # The user's config defines a filter (as git-lfs does); the command assigns it to every file.
    git(box.repo, "config", "filter.canary.clean", f"touch {canary}; cat")
    git(box.repo, "config", "filter.canary.smudge", f"touch {canary}; cat")
    git(box.repo, "config", "filter.canaryp.process", f"touch {canary}")
    box.rebaseline()
    box.sh("printf '* filter=canary\\n*.txt filter=canaryp\\n' > .gitattributes; echo data > a.txt; echo d > b.md")
    assert box.manager.commit_all(box.worktree, "filters") is not None
    assert not canary.exists()


def test_textconv_and_external_diff_drivers_do_not_run_on_host_diffs(box: Box, canary: Path) -> None:
    git(box.repo, "config", "diff.canary.textconv", f"touch {canary}; cat")
    git(box.repo, "config", "diff.external", f"touch {canary}; true")
    box.rebaseline()
    box.sh("printf '* diff=canary\\n' > .gitattributes; echo one > a.txt")
    box.manager.commit_all(box.worktree, "one")
    box.sh("echo two >> a.txt")
    from sandbox.host_git import driver_overrides

    diff = box.worktree.git("diff", "--no-ext-diff", overrides=driver_overrides(box.repo))
    assert "+two" in diff and not canary.exists()


def test_hooks_in_the_repository_itself_do_not_run_on_host_commits(box: Box, canary: Path) -> None:
    hook = box.worktree.common_dir / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {canary}\n", encoding="utf-8")
    hook.chmod(0o755)
    try:
        box.sh("echo change > x.txt")
        assert box.manager.commit_all(box.worktree, "hooked") is not None
        assert not canary.exists()
    finally:
        hook.unlink()


def test_worktree_creation_runs_no_checkout_hook_or_smudge_filter(box: Box, canary: Path) -> None:
    hook = box.worktree.common_dir / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {canary}\n", encoding="utf-8")
    hook.chmod(0o755)
    git(box.repo, "config", "filter.canary.smudge", f"touch {canary}; cat")
    (box.repo / ".gitattributes").write_text("* filter=canary\n", encoding="utf-8")
    git(box.repo, "add", ".gitattributes")
    git(box.repo, "-c", "filter.canary.clean=cat", "commit", "-qm", "attributes")
    box.rebaseline()
    try:
        head = git(box.repo, "rev-parse", "HEAD")
        box.manager.ensure("feedfacecafe", head)
        assert not canary.exists()
    finally:
        hook.unlink()
        box.rebaseline()
