"""The same contract over the real transports: a stdio subprocess and streamable HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_server.config import ensure_state_dir
from mcp_server.reviewers import ReviewerStore
from mcp_server.tasks.model import Task
from tests.helpers.servers import SHIPWAY, http_server

pytestmark = pytest.mark.anyio

TOKEN = "t0ken-for-tests-0123456789abcdef"


async def _start_and_fetch(client: Client, request: str) -> Task:
    started = await client.call_tool("start_task", {"request": request})
    assert not started.is_error, started.content
    task = Task.model_validate(started.structured_content)
    fetched = await client.call_tool("get_task", {"task_id": task.id})
    assert Task.model_validate(fetched.structured_content) == task
    return task


async def test_stdio_subprocess_serves_the_task_tools(repo: Path) -> None:
    params = StdioServerParameters(
        command=SHIPWAY,
        args=["serve", "--stdio", "--repo", str(repo)],
        env={"PATH": os.environ["PATH"], "SHIPWAY_EMBEDDER": "none"},
    )
    async with Client(params) as client:
        assert "start_task" in {t.name for t in (await client.list_tools()).tools}
        task = await _start_and_fetch(client, "over stdio")
    assert task.repo == str(repo.resolve())


async def test_streamable_http_serves_the_task_tools_health_and_review_page(repo: Path) -> None:
    reviewer_token = ReviewerStore(ensure_state_dir(repo / ".shipway")).add("carol")
    with http_server(repo) as server:
        async with Client(server.mcp_url) as client:
            task = await _start_and_fetch(client, "<script>alert(1)</script> over HTTP")
        async with httpx2.AsyncClient() as http:
            health = await http.get(f"{server.base_url}/healthz")
            anonymous = await http.get(f"{server.base_url}/review")
            page = await http.get(f"{server.base_url}/review", headers={"Authorization": f"Bearer {reviewer_token}"})
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/review/login")
    assert page.status_code == 200 and task.id in page.text
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text


async def test_http_with_a_token_refuses_requests_without_it(repo: Path) -> None:
    with http_server(repo, env={"SHIPWAY_HTTP_TOKEN": TOKEN}) as server:
        async with httpx2.AsyncClient() as http:
            bare = await http.post(server.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            wrong = await http.get(f"{server.base_url}/mcp", headers={"Authorization": "Bearer nope"})
            health = await http.get(f"{server.base_url}/healthz")
        authed = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
        async with authed, Client(streamable_http_client(server.mcp_url, http_client=authed)) as client:
            await _start_and_fetch(client, "with a token")
    assert bare.status_code == 401 and wrong.status_code == 401 and health.status_code == 200
    assert TOKEN not in bare.text


def test_binding_beyond_loopback_without_a_token_refuses_to_start(repo: Path) -> None:
    proc = subprocess.run(
        [SHIPWAY, "serve", "--http", "--host", "0.0.0.0", "--port", "0", "--repo", str(repo)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SHIPWAY_HTTP_TOKEN" in lines[0] and lines[0].startswith("shipway: error:")


def test_a_busy_port_is_reported_in_one_line(repo: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [SHIPWAY, "serve", "--http", "--port", str(port), "--repo", str(repo)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and f"{port}" in proc.stderr
    assert "--port" in proc.stderr
