"""Run as an ordinary (non-root) user by test_non_root.py: exercise the sandbox and print JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox.base import Limits
from sandbox.bubblewrap import BubblewrapSandbox
from sandbox.worktree import WorktreeManager

FORK = (
    "import os, time\nn = 0\ntry:\n for _ in range(300):\n  if os.fork() == 0:\n   time.sleep(20); os._exit(0)\n"
    "  n += 1\nexcept OSError:\n print('stopped', n)\nelse:\n print('unbounded', n)"
)


def main(repo: Path, canary: Path) -> None:
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    manager = WorktreeManager(repo, repo / ".shipway")
    worktree = manager.workspace(manager.ensure("nonroot0001a", head.strip()))
    sandbox = BubblewrapSandbox()
    probe = sandbox.run(
        ["sh", "-c", f"id -u; echo w > w.txt && cat w.txt; cat {canary} 2>&1; cat /proc/net/dev | tail -n +3"],
        worktree,
        Limits(timeout_s=30),
    )
    bomb = sandbox.run([sys.executable, "-c", FORK], worktree, Limits(timeout_s=30, processes=50))
    print(json.dumps({"uid": os.getuid(), "is_root": sandbox.is_root, "probe": probe.stdout, "bomb": bomb.stdout}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
