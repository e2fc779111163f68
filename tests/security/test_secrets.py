"""Escape attempts at the host's secrets: environment, home directory, git credentials, state."""

from __future__ import annotations

import os
from pathlib import Path

from tests.security.conftest import ALICE, SECRET, Box

ALLOWED_ENV = {
    "PATH", "HOME", "TMPDIR", "LANG", "TERM", "USER", "LOGNAME", "SHIPWAY_SANDBOX", "PWD", "SHLVL", "_",
    "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0", "RUSTUP_HOME",
}  # fmt: skip


def test_the_environment_is_an_allowlist_without_tokens_or_cloud_keys(box: Box) -> None:
    result = box.sh("env")
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines() if "=" in line}
    assert names <= ALLOWED_ENV, names - ALLOWED_ENV
    assert SECRET not in result.stdout
    home = next(line for line in result.stdout.splitlines() if line.startswith("HOME="))
    assert home == "HOME=/tmp/home"


def test_every_process_environment_visible_inside_is_clean(box: Box) -> None:
    result = box.sh("cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; cat /proc/1/environ | tr '\\0' '\\n'")
    assert SECRET not in result.stdout and "GITHUB_TOKEN" not in result.stdout


def test_a_canary_file_in_the_hosts_home_cannot_be_read(box: Box, home_canary: Path) -> None:
    read = box.sh(f"cat {home_canary}/secret.txt")
    assert read.exit_code != 0 and SECRET not in read.stdout
    assert home_canary.name not in box.sh(f"ls -a {Path.home()}").stdout


def test_ssh_and_cloud_credentials_directories_are_hidden(box: Box) -> None:
    home = Path.home()
    result = box.sh(f"ls -a {home}/.ssh {home}/.aws {home}/.config {home}/.gitconfig 2>&1; echo done")
    assert "No such file" in result.stdout
    visible = box.sh(f"ls -A {home}").stdout.split()
    assert set(visible) <= {".pyenv", ".cargo", ".rustup", ".nvm", ".volta", ".bun", ".deno", "go", ".local"}


def test_proc_of_host_processes_is_not_visible(box: Box) -> None:
    host_pid = os.getpid()
    result = box.sh(f"cat /proc/{host_pid}/environ 2>&1; ls /proc | grep -c '^[0-9]'")
    assert "No such file" in result.stdout and SECRET not in result.stdout
    assert int(result.stdout.strip().splitlines()[-1]) < 10, "the sandbox sees host processes"


def test_proc_1_root_leads_back_into_the_sandbox_not_the_host(box: Box, home_canary: Path) -> None:
    result = box.sh(f"cat /proc/1/root{home_canary}/secret.txt 2>&1; ls /proc/1/root{box.repo} 2>&1")
    assert SECRET not in result.stdout and ".env" not in result.stdout


def test_credentials_in_the_repos_git_config_are_not_visible(box: Box) -> None:
    result = box.sh('cat "$(git rev-parse --git-common-dir)/config"; git remote -v; git config --list')
    assert result.exit_code == 0
    assert SECRET not in result.stdout and "example.invalid" not in result.stdout


def test_the_main_checkout_and_its_uncommitted_files_are_hidden(box: Box) -> None:
    read = box.sh(f"cat {box.repo}/.env")
    assert read.exit_code != 0 and SECRET not in read.stdout
    # Only what the worktree needs is there: the object store and the path down to the worktree.
    assert set(box.sh(f"ls -a {box.repo}").stdout.split()) == {".", "..", ".git", ".shipway"}


def test_the_task_store_is_hidden(box: Box) -> None:
    state = box.deps.settings.state_path
    result = box.sh(f"ls {state}; cat {state}/tasks.db 2>&1 | head -c 100")
    assert "tasks.db" not in result.stdout.split() and "SQLite" not in result.stdout


def test_another_tasks_worktree_is_neither_visible_nor_writable(box: Box) -> None:
    other = box.deps.tasks.start("another task", ALICE)
    other_tree = box.manager.ensure(other.id, other.base_commit)
    (other_tree.path / "private.txt").write_text(SECRET, encoding="utf-8")
    result = box.sh(
        f"cat {other_tree.path}/private.txt 2>&1; echo pwn > {other_tree.path}/README.md 2>&1; "
        f"mkdir -p {other_tree.path} 2>&1; echo x > {other_tree.path}/new 2>&1; echo end"
    )
    assert SECRET not in result.stdout
    assert (other_tree.path / "README.md").read_text() == "# sample\n"
    assert not (other_tree.path / "new").exists()
