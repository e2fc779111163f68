"""The `shipway` CLI as a user runs it: a real subprocess per command."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

from mcp_server import __version__
from tests.helpers.servers import SHIPWAY


def shipway(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHIPWAY, *args], capture_output=True, text=True, input=stdin, cwd=cwd, timeout=60)


def test_version() -> None:
    proc = shipway("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"shipway {__version__}"


def test_a_task_round_trip_with_json_output(repo: Path) -> None:
    started = shipway("task", "start", "--manual", "Add a --verbose flag", "--repo", str(repo), "--json")
    assert started.returncode == 0, started.stderr
    task = json.loads(started.stdout)
    assert task["state"] == "requested" and task["created_by"].startswith("human:")

    listed = json.loads(shipway("task", "list", "--repo", str(repo), "--json").stdout)
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]

    shown = json.loads(shipway("task", "show", task["id"][:5], "--repo", str(repo), "--json").stdout)
    assert shown == task

    aborted = shipway("task", "abort", task["id"], "--reason", "not needed", "--repo", str(repo), "--json")
    assert json.loads(aborted.stdout)["state"] == "aborted"

    log = json.loads(shipway("task", "log", task["id"], "--repo", str(repo), "--json").stdout)
    assert [e["action"] for e in log["events"]] == ["created", "aborted"] and log["chain"]["ok"]

    verified = shipway("task", "verify", task["id"], "--repo", str(repo))
    assert verified.returncode == 0 and "ok (2 events)" in verified.stdout


def test_the_repo_defaults_to_the_current_directory_and_requests_can_come_from_stdin(repo: Path) -> None:
    started = shipway("task", "start", "--manual", "-", "--json", stdin="From stdin\nwith details\n", cwd=repo)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["request"] == "From stdin\nwith details"
    text = shipway("task", "list", cwd=repo).stdout
    assert "From stdin" in text and "requested" in text


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shipway: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert proc.stdout == ""


def test_errors_are_one_line_with_a_nonzero_exit(repo: Path, tmp_path: Path) -> None:
    _one_line_error(shipway("task", "show", "ffff", "--repo", str(repo)), 1, "no task 'ffff'")
    _one_line_error(
        shipway("task", "start", "--manual", "x", "--repo", str(tmp_path)), 1, "not inside a git repository"
    )
    assert not (tmp_path / ".shipway").exists()
    _one_line_error(
        shipway("task", "start", "--manual", "-", "--repo", str(repo), stdin="y" * 20_001), 1, "limit is 20,000"
    )
    _one_line_error(shipway("task", "frobnicate"), 2, "No such command", "--help")
    _one_line_error(shipway("task", "verify", "--repo", str(repo)), 2, "TASK_ID or --all")
    _one_line_error(shipway("task", "list", "--state", "done", "--repo", str(repo)), 2, "state")
    assert json.loads(shipway("task", "list", "--repo", str(repo), "--json").stdout)["total"] == 0


def test_verify_exits_1_and_names_the_broken_event(repo: Path) -> None:
    task = json.loads(shipway("task", "start", "--manual", "change", "--repo", str(repo), "--json").stdout)
    shipway("task", "abort", task["id"], "--reason", "stop", "--repo", str(repo))
    with sqlite3.connect(repo / ".shipway" / "tasks.db") as conn:
        (data,) = conn.execute("SELECT data FROM events WHERE seq = 2").fetchone()
        conn.execute("UPDATE events SET data = ? WHERE seq = 2", (data.replace("stop", "STOP"),))
    proc = shipway("task", "verify", "--all", "--repo", str(repo), "--json")
    assert proc.returncode == 1
    [report] = json.loads(proc.stdout)["reports"]
    assert report["bad_seq"] == 2 and not report["ok"]


def test_client_config_prints_snippets_for_each_client(repo: Path) -> None:
    proc = shipway("client-config", "--repo", str(repo), "--url", "http://127.0.0.1:8765/mcp")
    assert proc.returncode == 0
    for client in ("Claude Code", "VS Code", "Cursor", "Warp"):
        assert f"# {client}" in proc.stdout
    assert f'"{repo.resolve()}"' in proc.stdout and "http://127.0.0.1:8765/mcp" in proc.stdout


def test_the_sample_repository_from_examples_takes_a_task_as_its_readme_says(tmp_path: Path) -> None:
    from tests.conftest import REPO_ROOT
    from tests.helpers.gitrepo import git

    sample = tmp_path / "hello-cli"
    shutil.copytree(REPO_ROOT / "examples" / "hello-cli", sample)
    git(sample, "init", "-q")
    git(sample, "add", ".")
    git(sample, "commit", "-qm", "sample")
    proc = shipway("task", "start", "--manual", "Add a --shout flag", "--repo", str(sample), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["repo"] == str(sample.resolve())


def test_terminal_control_sequences_in_requests_are_shown_escaped_not_executed(repo: Path) -> None:
    hostile = "Fix it\x1b[2J\x1b]0;pwned\x07 now\nsecond line\twith tab"
    started = shipway("task", "start", "--manual", "-", "--repo", str(repo), "--json", stdin=hostile)
    task_id = json.loads(started.stdout)["id"]
    for args in (("task", "list"), ("task", "show", task_id)):
        out = shipway(*args, "--repo", str(repo)).stdout
        assert "\x1b" not in out and "\x07" not in out
        assert "Fix it\\x1b[2J\\x1b]0;pwned\\x07 now" in out
    assert "second line\twith tab" in shipway("task", "show", task_id, "--repo", str(repo)).stdout
