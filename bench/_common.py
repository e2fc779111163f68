"""Shared pieces of the benchmarks: a seeded repo, servers as subprocesses, percentiles."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPWAY = str(Path(sys.executable).parent / "shipway")
BARE = [sys.executable, str(REPO_ROOT / "bench" / "bare_server.py")]
_URL = re.compile(r"^MCP URL:\s+(http://\S+/mcp)$")


def seeded_repo(tasks: int) -> Path:
    """A fresh git repo whose store holds `tasks` tasks (a third of them aborted)."""
    from mcp_server.app import open_deps
    from mcp_server.config import load_settings
    from mcp_server.tasks.model import Actor

    repo = Path(tempfile.mkdtemp(prefix="shipway-bench-"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "init"], check=True, env=env)
    service = open_deps(load_settings(repo=repo)).tasks
    actor = Actor(kind="human", name="bench")
    for n in range(tasks):
        task = service.start(f"Benchmark request number {n}: make the thing faster", actor)
        if n % 3 == 0:
            service.abort(task.id, "bench", actor)
    return repo


@contextmanager
def http_process(cmd: list[str]) -> Iterator[str]:
    """Run a server that prints `MCP URL: ...`; yield that URL; stop it afterwards."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "SHIPWAY_LOG_LEVEL": "WARNING"})  # fmt: skip
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if match := _URL.match(line.strip()):
                    yield match.group(1)
                    break
                if not line and proc.poll() is not None:
                    err.seek(0)
                    raise RuntimeError(f"server exited: {err.read()[-2000:]}")
            else:
                raise TimeoutError("server did not start")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()


def percentile(samples: list[float], pct: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[int(pct) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"
