"""A real moto server (moto[server]) on 127.0.0.1, for the AWS backends' tests.

It runs as `tests/helpers/moto_launch.py`: moto's own server, with DynamoDB requests serialised
(see there why).

One server per test session; `reset` empties it between tests (POST /moto-api/reset). Tests
reach it over real HTTP with boto3, exactly as Shipway reaches AWS, with fake credentials.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def moto_binary() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    return str(beside) if beside.exists() else shutil.which("moto_server")


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """Start moto_server on a free loopback port; yields its endpoint URL."""
    if moto_binary() is None:
        raise RuntimeError("moto_server is not installed: `make install` installs moto[server] (the test extra)")
    port = _free_port()
    command = [sys.executable, "-m", "tests.helpers.moto_launch", "127.0.0.1", str(port)]  # moto_server, see there
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/data.json", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def reset(url: str) -> None:
    """Forget every bucket, stack, table and queue."""
    httpx.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
