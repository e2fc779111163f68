"""Fixtures for the escape suite: a real task worktree, host canaries, and after every test
two checks that apply to all of them: the host snapshot is unchanged and no process of a
sandbox uid is still alive."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.tasks.model import Actor, Task
from sandbox.base import ExecResult, Limits
from sandbox.worktree import SANDBOX_UID_BASE, SANDBOX_UID_SPAN, Worktree, WorktreeManager
from tests.helpers.gitrepo import git, init_repo
from tools.exec import run_command

if shutil.which("bwrap") is None:
    pytest.skip("bubblewrap (bwrap) is not installed: `make test` installs it", allow_module_level=True)

SECRET = f"canary-{uuid.uuid4().hex}"
ALICE = Actor(kind="human", name="alice")
FAST = Limits(timeout_s=30)


@dataclass
class Box:
    """One task with a worktree, and a way to run code in its sandbox."""

    deps: ServerDeps
    task: Task
    manager: WorktreeManager
    worktree: Worktree
    repo: Path
    watched: tuple[Path, ...] = ()
    baseline: dict[str, str] = field(default_factory=dict)

    def rebaseline(self) -> None:
        """Take the host snapshot again, after a test's own deliberate host-side setup."""
        self.baseline = _snapshot(*self.watched)

    def sh(self, script: str, limits: Limits = FAST) -> ExecResult:
        return run_command(self.deps.workspaces.sandbox, self.manager.workspace(self.worktree), script,
                           limits.timeout_s, limits)  # fmt: skip

    def py(self, code: str, limits: Limits = FAST) -> ExecResult:
        return run_command(self.deps.workspaces.sandbox, self.manager.workspace(self.worktree),
                           ["python3", "-c", code], limits.timeout_s, limits)  # fmt: skip


@dataclass
class Listener:
    """A TCP and a UDP listener on the host's loopback that record anything that reaches them."""

    tcp_port: int
    udp_port: int
    received: list[str] = field(default_factory=list)


def _snapshot(
    *roots: Path, skip: tuple[str, ...] = (".shipway", "objects", "worktrees", "logs", "shipway")
) -> dict[str, str]:
    """File hashes under `roots`; git's object store, task refs and worktree admin dirs may grow."""
    found: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in skip]
            for name in filenames:
                path = Path(dirpath) / name
                if path.is_symlink() or not path.is_file():
                    continue
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def sandbox_processes() -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid_line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if SANDBOX_UID_BASE <= int(uid_line.split()[1]) < SANDBOX_UID_BASE + SANDBOX_UID_SPAN:
            pids.append(int(status.parent.name))
    return pids


@pytest.fixture(scope="session")
def home_canary() -> Iterator[Path]:
    folder = Path.home() / f".shipway-canary-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET, encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home_canary: Path) -> Iterator[Box]:
    for name in ("SHIPWAY_CANARY", "GITHUB_TOKEN", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
        monkeypatch.setenv(name, SECRET)
    repo = init_repo(tmp_path / "repo")
    git(repo, "config", "remote.origin.url", f"https://x-access-token:{SECRET}@example.invalid/o/r.git")
    (repo / ".env").write_text(f"API_KEY={SECRET}\n", encoding="utf-8")  # uncommitted, main checkout only
    deps = open_deps(load_settings(repo=repo))
    task = deps.tasks.start("security test", ALICE)
    manager = deps.workspaces.manager(repo.resolve())
    worktree = manager.ensure(task.id, task.base_commit)
    built = Box(deps, task, manager, worktree, repo.resolve(), watched=(repo, home_canary))
    built.rebaseline()
    yield built
    assert _snapshot(*built.watched) == built.baseline, "the host changed"
    assert sandbox_processes() == [], "a sandboxed process outlived its command"


@pytest.fixture
def listener() -> Iterator[Listener]:
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp.settimeout(0.2)
    udp.settimeout(0.2)
    found = Listener(tcp.getsockname()[1], udp.getsockname()[1])
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
                found.received.append("tcp")
                conn.close()
            except OSError:
                pass
            try:
                udp.recvfrom(512)
                found.received.append("udp")
            except OSError:
                pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield found
    time.sleep(0.3)
    stop.set()
    thread.join()
    tcp.close()
    udp.close()


def small(**changes: float) -> Limits:
    return replace(FAST, **changes)  # type: ignore[arg-type]
