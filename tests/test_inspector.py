"""A real third-party client: the official MCP Inspector CLI (pinned in tests/inspector/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mcp_server.app import open_deps
from mcp_server.config import load_settings
from tests.conftest import REPO_ROOT
from tests.helpers.servers import SHIPWAY, http_server
from tests.test_mcp_inprocess import AGENT_TOOLS

pytestmark = pytest.mark.slow

INSPECTOR_DIR = REPO_ROOT / "tests" / "inspector"
INSPECTOR = INSPECTOR_DIR / "node_modules" / ".bin" / "mcp-inspector"


@pytest.fixture(scope="module")
def inspector() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so the MCP Inspector cannot run (install Node.js and npm)")
    if not INSPECTOR.exists():
        subprocess.run(
            ["npm", "ci", "--prefix", str(INSPECTOR_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            check=True, timeout=600,
        )  # fmt: skip
    return INSPECTOR


def _inspect(inspector: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run([str(inspector), "--cli", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_the_inspector_lists_the_tools_and_searches_over_streamable_http(inspector: Path, repo: Path) -> None:
    with http_server(repo) as server:
        listing = _inspect(inspector, server.mcp_url, "--transport", "http", "--method", "tools/list")
        found = _inspect(
            inspector, server.mcp_url, "--transport", "http",
            "--method", "tools/call", "--tool-name", "search_repo", "--tool-arg", "query=sample",
        )  # fmt: skip
    assert {tool["name"] for tool in listing["tools"]} == AGENT_TOOLS  # type: ignore[attr-defined]
    assert found["structuredContent"]["hits"][0]["path"] == "README.md"  # type: ignore[index]


def test_the_inspector_starts_a_task_over_stdio(inspector: Path, repo: Path) -> None:
    result = _inspect(
        inspector, SHIPWAY, "serve", "--stdio", "--repo", str(repo),
        "--method", "tools/call", "--tool-name", "start_task", "--tool-arg", "request=Rename the helper module",
    )  # fmt: skip
    assert result.get("isError") in (None, False)
    task = result["structuredContent"]
    stored = open_deps(load_settings(repo=repo)).tasks.get(task["id"])  # type: ignore[index]
    assert stored.request == "Rename the helper module" and stored.created_by == "agent:mcp-client"
