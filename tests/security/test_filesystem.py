"""Escape attempts through the filesystem: writes outside the worktree, symlinks, hardlinks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.helpers.gitrepo import git
from tests.security.conftest import SECRET, Box


def test_the_worktree_is_writable(box: Box) -> None:
    result = box.sh("echo made > made.txt && cat made.txt")
    assert result.stdout == "made\n"
    assert (box.worktree.path / "made.txt").read_text() == "made\n"


@pytest.mark.parametrize("target", ["/etc/shipway-canary", "/usr/bin/shipway-canary", "/sys/kernel/canary"])
def test_system_directories_are_read_only(box: Box, target: str) -> None:
    result = box.sh(f"echo x > {target}; echo rc=$?")
    assert "rc=0" not in result.stdout
    assert not Path(target).exists()


def test_writes_to_the_hosts_home_land_in_a_throwaway_tmpfs(box: Box) -> None:
    name = f"shipway-canary-{uuid.uuid4().hex[:8]}"
    result = box.sh(f"echo x > {Path.home()}/{name}; echo rc=$?")
    assert not (Path.home() / name).exists()
    assert "rc=" in result.stdout


def test_writes_to_the_hosts_tmp_stay_private(box: Box) -> None:
    name = f"shipway-canary-{uuid.uuid4().hex[:8]}"
    result = box.sh(f"echo x > /tmp/{name} && cat /tmp/{name}")
    assert result.stdout == "x\n"
    assert not Path(f"/tmp/{name}").exists()


def test_the_repos_hooks_and_config_cannot_be_written(box: Box) -> None:
    common = box.worktree.common_dir
    result = box.sh(
        f"echo 'touch /tmp/pwned' > {common}/hooks/pre-commit 2>&1; chmod +x {common}/hooks/pre-commit 2>&1; "
        f"echo '[core] fsmonitor = touch /tmp/pwned' >> {common}/config 2>&1; git config core.fsmonitor evil 2>&1; "
        "echo end"
    )
    assert "Read-only file system" in result.stdout
    assert not (common / "hooks" / "pre-commit").exists()
    assert "fsmonitor" not in (common / "config").read_text()


def test_the_main_checkout_cannot_be_written(box: Box) -> None:
    result = box.sh(f"echo pwned > {box.repo}/README.md 2>&1; echo end")
    assert "end" in result.stdout
    assert (box.repo / "README.md").read_text() == "# sample\n"


def _commit_in_worktree(box: Box, name: str, target: str) -> None:
    (box.worktree.path / name).symlink_to(target)
    box.manager.commit_all(box.worktree, f"add {name}")


def test_a_committed_symlink_to_a_home_secret_reads_nothing(box: Box, home_canary: Path) -> None:
    _commit_in_worktree(box, "leak", f"{home_canary}/secret.txt")
    result = box.sh("cat leak 2>&1")
    assert SECRET not in result.stdout and result.exit_code != 0


def test_a_committed_relative_symlink_into_the_repo_reads_no_secret(box: Box) -> None:
    _commit_in_worktree(box, "cfg", "../../../.git/config")
    _commit_in_worktree(box, "dotenv", "../../../.env")
    result = box.sh("cat cfg dotenv 2>&1")
    assert SECRET not in result.stdout


def test_writing_through_a_symlink_that_points_out_of_the_worktree_changes_nothing(box: Box) -> None:
    _commit_in_worktree(box, "out", f"{Path.home()}/.bashrc-shipway-canary")
    _commit_in_worktree(box, "readme", f"{box.repo}/README.md")
    box.sh("echo pwned > out 2>&1; echo pwned > readme 2>&1; echo end")
    assert not (Path.home() / ".bashrc-shipway-canary").exists()
    assert (box.repo / "README.md").read_text() == "# sample\n"


def test_hardlinks_to_files_outside_the_worktree_cannot_be_made(box: Box) -> None:
    common = box.worktree.common_dir
    result = box.sh(f"ln /etc/passwd pw 2>&1; ln {common}/HEAD head 2>&1; ls")
    assert "pw" not in result.stdout.split() and "head" not in result.stdout.split()


def test_the_host_side_commit_records_a_planted_symlink_as_a_link_without_following_it(
    box: Box, home_canary: Path
) -> None:
    box.sh(f"ln -s {home_canary}/secret.txt planted")
    box.manager.commit_all(box.worktree, "planted")
    blob = git(box.repo, "show", "shipway/" + box.task.id + ":planted")
    assert blob == f"{home_canary}/secret.txt" and SECRET not in blob


def test_devices_beyond_the_minimal_set_are_absent(box: Box) -> None:
    result = box.sh("ls /dev")
    assert set(result.stdout.split()) <= {
        "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
        "stdin", "stdout", "tty", "urandom", "zero",
    }  # fmt: skip
