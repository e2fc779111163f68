"""Start `shipway serve --http` as a real subprocess and find its URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SHIPWAY = str(Path(sys.executable).parent / "shipway")
_URL_LINE = re.compile(r"^MCP URL:\s+(http://\S+)/mcp$")


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    base_url: str

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"


def _wait_for_url(proc: subprocess.Popen[str], stderr: IO[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                stderr.seek(0)
                raise RuntimeError(f"server exited with {proc.returncode}: {stderr.read().strip()[-2000:]}")
            continue
        match = _URL_LINE.match(line.strip())
        if match:
            return match.group(1)
    raise TimeoutError("server did not print its MCP URL in time")


@contextmanager
def http_server(repo: Path, *extra: str, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    # stderr goes to a file so a chatty server can never block on a full pipe; stdout only
    # carries the banner, read up to the URL line.
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [SHIPWAY, "serve", "--http", "--port", "0", "--repo", str(repo), *extra],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "SHIPWAY_LOG_LEVEL": "WARNING", **(env or {})},
        )
        try:
            yield RunningServer(proc, _wait_for_url(proc, stderr, time.monotonic() + 30))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
