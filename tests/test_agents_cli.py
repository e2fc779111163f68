"""The autonomous loop from the command line, as a developer and a reviewer would run it.

`shipway task start --wait` queues the task and a spawned `shipway worker` process plans it;
the reviewer approves the plan with `shipway plan approve`, which wakes a new worker that codes,
tests, opens the PR and watches CI; the reviewer approves and merges with the CLI. The model is
a ScriptedChatModel replaying examples/replays/hello-cli-shout.json from a file, its position
kept in a cursor file across the worker processes; everything else is real.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from agents.scripted import Script
from mcp_server.app import open_deps
from mcp_server.config import load_settings
from tests.helpers.gitrepo import git
from tests.helpers.samples import EXAMPLES, sample_repo
from tests.test_sandbox_tool import needs_bwrap, shipway

pytestmark = [needs_bwrap, pytest.mark.slow]

SCRIPT = EXAMPLES / "replays" / "hello-cli-shout.json"
REQUEST = "Add a --shout flag that prints the greeting in capitals"


def _wait_for_state(repo: Path, task_id: str, wanted: str, timeout_s: float = 120.0) -> None:
    deps = open_deps(load_settings(repo=repo))
    deadline = time.monotonic() + timeout_s
    try:
        while (state := deps.tasks.get(task_id).state) != wanted:
            assert time.monotonic() < deadline, f"task {task_id} is {state}, still not {wanted}"
            time.sleep(0.5)
    finally:
        deps.tasks.store.close()


def test_start_wait_then_plan_approval_review_and_merge_from_the_cli(tmp_path: Path) -> None:
    repo = sample_repo("hello-cli", tmp_path / "hello")
    script = shutil.copy(SCRIPT, tmp_path / "script.json")
    env = {"SHIPWAY_MODEL_SCRIPT": str(script), "SHIPWAY_TEST_PYTHON": sys.executable}

    started = shipway("task", "start", REQUEST, "--repo", str(repo), "--wait", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    task_id = started.stdout.split()[1]
    assert "plan_proposed" in started.stdout and "the plan waits for a reviewer" in started.stdout

    approved = shipway("plan", "approve", task_id, "--as", "carol", "--comment", "go", "--repo", str(repo), env=env)
    assert approved.returncode == 0, approved.stderr
    _wait_for_state(repo, task_id, "review")

    assert shipway("review", "approve", task_id, "--as", "carol", "--repo", str(repo), env=env).returncode == 0
    merged = shipway("pr", "merge", task_id, "--repo", str(repo), "--json", env=env)
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["state"] == "merged"

    assert "return text.upper() if shout else text" in git(repo, "show", "main:hello/cli.py")
    assert "HELLO, ADA!" in git(repo, "show", "main:tests/test_shout.py")
    steps = len(Script.model_validate_json(SCRIPT.read_text()).steps)
    assert int((tmp_path / "script.json.cursor").read_text()) == steps, "every scripted step was used"

    log = shipway("task", "log", task_id, "--repo", str(repo), "--json")
    events = json.loads(log.stdout)
    assert events["chain"]["ok"] is True
    by_action = {e["action"]: e["actor"] for e in events["events"]}
    assert by_action["plan_approved"] == "human:carol" and by_action["pr_merged"].startswith("human:")
    assert by_action["pr_opened"] == "agent:shipway" and by_action["agent_step"] == "agent:coder"
    assert shipway("task", "verify", task_id, "--repo", str(repo)).returncode == 0


def test_an_autonomous_start_without_a_model_fails_fast_and_says_what_to_do(tmp_path: Path) -> None:
    repo = sample_repo("hello-cli", tmp_path / "hello")
    proc = shipway("task", "start", REQUEST, "--repo", str(repo))
    assert proc.returncode == 1
    assert "SHIPWAY_MODEL" in proc.stderr and "--manual" in proc.stderr and "start_task" in proc.stderr
    listed = shipway("task", "list", "--repo", str(repo), "--json")
    assert json.loads(listed.stdout)["total"] == 0, "a refused start creates nothing"


def test_the_demo_replays_the_whole_loop_and_says_it_is_a_replay(tmp_path: Path) -> None:
    proc = shipway("demo", "--dir", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert out.splitlines()[1].startswith("REPLAY:")
    for marker in ("2. plan", "3. approval", "4. diff", "5. tests/PR", "6. review", "7. merge", "chain verified"):
        assert marker in out, marker
    assert "CI success" in out and "/review/tasks/" in out
    repo = tmp_path / "demo" / "hello-cli"
    assert "--shout" in git(repo, "show", "main:hello/cli.py")


@pytest.mark.anyio
async def test_a_remote_worker_drives_a_task_started_over_mcp_through_the_servers_http_endpoint(
    tmp_path: Path,
) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from mcp_server.reviewers import ReviewerStore
    from tests.helpers.servers import http_server

    repo = sample_repo("hello-cli", tmp_path / "hello")
    script = shutil.copy(SCRIPT, tmp_path / "script.json")
    token = "remote-worker-token-0123456789"
    env = {"SHIPWAY_MODEL_SCRIPT": str(script), "SHIPWAY_TEST_PYTHON": sys.executable,
           "SHIPWAY_AGENT_LAUNCH": "external", "SHIPWAY_HTTP_TOKEN": token}  # fmt: skip
    with http_server(repo, env=env) as server:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(server.mcp_url, http_client=http)) as client:
            started = await client.call_tool("start_task", {"request": REQUEST, "autonomous": True})
        assert not started.is_error, started.content
        task_id = started.structured_content["id"]
        assert started.structured_content["autonomous"] is True

        worker = shipway("worker", "--task", task_id, "--server", server.mcp_url, "--repo", str(repo), env=env)
        assert worker.returncode == 0, worker.stderr[-2000:]
        assert worker.stdout.startswith("waiting: plan_review"), worker.stdout

        reviewer = ReviewerStore(repo / ".shipway").add("carol")
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {reviewer}"}) as web:
            page = await web.get(f"{server.base_url}/review/tasks/{task_id}")
        tokens = sum(s.usage.total for s in Script.model_validate_json(SCRIPT.read_text()).steps[:3])
        assert f"<dt>Agents</dt><dd>3 model calls, {tokens:,} tokens, $0.0000</dd>" in page.text

        assert shipway("task", "continue", task_id, "--repo", str(repo), env=env).returncode == 0  # queued again
        wrong = "a-wrong-token-0123456789"
        refused = shipway("worker", "--task", task_id, "--server", server.mcp_url, "--repo", str(repo),
                          env={**env, "SHIPWAY_HTTP_TOKEN": wrong})  # fmt: skip
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr[-2000:]
        assert "HTTP 401" in refused.stderr and "SHIPWAY_HTTP_TOKEN" in refused.stderr and wrong not in refused.stderr

    log = json.loads(shipway("task", "log", task_id, "--repo", str(repo), "--json").stdout)
    actors = {e["action"]: e["actor"] for e in log["events"]}
    # The tools ran in the server process, which acts for any agent session as agent:mcp-client.
    assert actors["plan_proposed"] == "agent:mcp-client" and actors["agent_step"] == "agent:planner"
    assert log["chain"]["ok"]


def test_a_paused_task_continues_from_the_cli_in_the_same_round(tmp_path: Path) -> None:
    import socket

    repo = sample_repo("hello-cli", tmp_path / "hello")
    with socket.socket() as probe:  # a port nothing listens on: the model server is down
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    down = {"SHIPWAY_MODEL": "some-model", "SHIPWAY_MODEL_BASE_URL": f"http://127.0.0.1:{dead}/v1",
            "SHIPWAY_MODEL_MAX_RETRIES": "0", "SHIPWAY_TEST_PYTHON": sys.executable}  # fmt: skip
    started = shipway("task", "start", REQUEST, "--repo", str(repo), "--wait", env=down)
    assert started.returncode == 1, started.stdout + started.stderr
    assert "agent_paused" in started.stdout and "cannot reach" in started.stdout
    task_id = started.stdout.split()[1]

    up = {"SHIPWAY_MODEL_SCRIPT": str(shutil.copy(SCRIPT, tmp_path / "script.json")),
          "SHIPWAY_TEST_PYTHON": sys.executable}  # fmt: skip
    resumed = shipway("task", "continue", task_id, "--repo", str(repo), "--wait", env=up)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "plan_proposed" in resumed.stdout and "agent_paused" not in resumed.stdout, "only what happened since"

    log = json.loads(shipway("task", "log", task_id, "--repo", str(repo), "--json").stdout)["events"]
    assert [e["payload"]["round"] for e in log if e["action"] == "agent_round_started"] == [1], "the same round"
