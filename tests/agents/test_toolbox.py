"""Toolbox and the LangChain adapter over a real in-process MCP server (mcp 2.x `Client`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from agents.langchain_tools import langchain_tools
from agents.toolbox import MAX_RESULT_CHARS, Toolbox, ToolFailed, clip
from mcp_server.app import ServerDeps
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from tests.helpers.gitrepo import git

pytestmark = pytest.mark.anyio

DEV = Actor(kind="human", name="dev")
NAMES = ["get_task", "get_task_log", "read_file", "start_task"]


def start(deps: ServerDeps, request: str = "x") -> Task:
    return deps.tasks.start(request, DEV)


async def test_open_refuses_a_tool_that_is_not_served(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        with pytest.raises(ToolFailed, match=r"does not serve approve_plan, no_such_tool; .*'agent' toolset"):
            await Toolbox.open(client, ["read_file", "approve_plan", "no_such_tool"], {})
        toolbox = await Toolbox.open(client, ["read_file", "get_task"], {})
    assert toolbox.names == ["read_file", "get_task"], "the toolbox keeps the order it was asked for"


async def test_schemas_drop_the_bound_task_id(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        served = {t.name: t for t in (await client.list_tools()).tools}
        toolbox = await Toolbox.open(client, ["get_task_log", "read_file", "abort_task"], {"task_id": "abcd1234"})
    schemas = {s.name: s for s in toolbox.schemas()}
    assert set(schemas) == {"get_task_log", "read_file", "abort_task"}

    log = schemas["get_task_log"].parameters
    assert "task_id" not in log["properties"] and "task_id" not in log.get("required", [])
    assert set(log["properties"]) == {"after_seq", "limit"}
    assert schemas["abort_task"].parameters["required"] == ["reason"]
    assert schemas["read_file"].parameters == served["read_file"].input_schema, "a tool without task_id is unchanged"
    assert "task_id" in served["get_task_log"].input_schema["properties"], "the served schema itself is untouched"
    assert schemas["get_task_log"].description == served["get_task_log"].description
    assert schemas["abort_task"].openai()["function"]["name"] == "abort_task"

    assert [s.name for s in toolbox.schemas(["read_file", "not_in_box"])] == ["read_file"]


async def test_the_bound_task_id_fills_in_and_overrides_the_models(deps: ServerDeps) -> None:
    mine, other = start(deps, "the bound task"), start(deps, "another task")
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {"task_id": mine.id})
        omitted = await toolbox.call_json("get_task", "{}")
        overridden = await toolbox.call_json("get_task", json.dumps({"task_id": other.id}))
        bogus = await toolbox.call("get_task", {"task_id": "zzzz-not-a-task"})
        unbound = await toolbox.call_json("read_file", '{"path": "README.md"}')
        data = await toolbox.data("get_task_log")

    for outcome in (omitted, overridden, bogus):
        assert outcome.ok, outcome.text
        assert outcome.data is not None and outcome.data["id"] == mine.id
        assert json.loads(outcome.text)["request"] == "the bound task"
    assert unbound.ok and unbound.data is not None and unbound.data["path"] == "README.md"
    assert "task_id" not in unbound.text
    assert [e["action"] for e in data["events"]] == ["created"]


async def test_arguments_that_are_not_a_json_object_never_reach_the_server(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {})
        broken = await toolbox.call_json("start_task", '{"request": "Add a flag"')
        listed = await toolbox.call_json("start_task", '["Add a flag"]')
        text = await toolbox.call_json("start_task", '"Add a flag"')
    assert not broken.ok and broken.name == "start_task"
    assert "not valid JSON" in broken.text and "send an object" in broken.text
    for outcome in (listed, text):
        assert not outcome.ok and outcome.text == "the arguments must be a JSON object"
    assert deps.tasks.page().total == 0, "no call reached start_task"


async def test_empty_arguments_are_an_empty_object(deps: ServerDeps) -> None:
    task = start(deps)
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {"task_id": task.id})
        outcome = await toolbox.call_json("get_task", "")
    assert outcome.ok and outcome.data is not None and outcome.data["id"] == task.id


async def test_an_unknown_tool_lists_the_tools(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, ["read_file", "get_task"], {})
        outcome = await toolbox.call_json("run_command", '{"command": "rm -rf /"}')
    assert not outcome.ok and outcome.name == "run_command"
    assert outcome.text == "there is no tool 'run_command' here; the tools are: read_file, get_task"


async def test_a_tool_error_comes_back_as_the_servers_message(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {})
        missing = await toolbox.call_json("read_file", '{"path": "no/such/file.py"}')
        with pytest.raises(ToolFailed, match="is not a file in the repository"):
            await toolbox.data("read_file", path="no/such/file.py")
    assert not missing.ok and missing.data is None
    assert "'no/such/file.py' is not a file in the repository" in missing.text
    assert "search_repo finds files" in missing.text, "the server's hint reaches the model"


async def test_invalid_arguments_come_back_as_an_error_the_model_can_act_on(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {})
        outcome = await toolbox.call_json("read_file", '{"path": "README.md", "start_line": 0}')
    assert not outcome.ok
    assert "start_line" in outcome.text


async def test_a_big_result_is_clipped_with_a_marker(deps: ServerDeps, repo: Path) -> None:
    line = "# " + "padding " * 12 + "\n"
    (repo / "big.py").write_text(line * 390, encoding="utf-8")
    git(repo, "add", "big.py")
    git(repo, "commit", "-q", "-m", "a big file")
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {})
        outcome = await toolbox.call_json("read_file", '{"path": "big.py"}')
    assert outcome.ok and outcome.data is not None
    full = json.dumps(outcome.data, separators=(",", ":"))
    assert len(full) > MAX_RESULT_CHARS
    head, _, marker = outcome.text.partition("\n…[cut: ")
    assert head == full[:MAX_RESULT_CHARS]
    assert marker == f"{len(full) - MAX_RESULT_CHARS:,} more characters; ask for less, e.g. a narrower range]"


def test_clip() -> None:
    assert clip("short") == "short"
    assert clip("x" * 10, limit=10) == "x" * 10
    assert clip("x" * 15, limit=10) == "x" * 10 + "\n…[cut: 5 more characters; ask for less, e.g. a narrower range]"
    assert clip("y" * (MAX_RESULT_CHARS + 12_345)).endswith(
        "…[cut: 12,345 more characters; ask for less, e.g. a narrower range]"
    )


async def test_langchain_tools_have_the_toolbox_names_and_schemas(deps: ServerDeps) -> None:
    task = start(deps)
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {"task_id": task.id})
        tools = langchain_tools(toolbox)
        some = langchain_tools(toolbox, ["read_file"])
    assert [t.name for t in tools] == NAMES
    assert [t.name for t in some] == ["read_file"]
    by_name = {t.name: t for t in tools}
    assert "task_id" not in by_name["get_task_log"].args
    assert set(by_name["get_task_log"].args) == {"after_seq", "limit"}
    assert set(by_name["read_file"].args) == {"path", "start_line", "end_line"}
    assert by_name["read_file"].description == toolbox.schemas(["read_file"])[0].description


async def test_langchain_ainvoke_returns_the_json_text_and_errors_as_text(deps: ServerDeps) -> None:
    task = start(deps, "the bound task")
    async with Client(create_server(deps)) as client:
        toolbox = await Toolbox.open(client, NAMES, {"task_id": task.id})
        tools = {t.name: t for t in langchain_tools(toolbox)}
        read = await tools["read_file"].ainvoke({"path": "README.md"})
        got = await tools["get_task"].ainvoke({})
        failed = await tools["read_file"].ainvoke({"path": "no/such/file.py"})
        direct = await toolbox.call("read_file", {"path": "README.md"})
    assert isinstance(read, str) and read == direct.text, "the same compact JSON Shipway's own agents get"
    assert json.loads(read)["path"] == "README.md" and "# sample" in json.loads(read)["text"]
    assert json.loads(got)["id"] == task.id and json.loads(got)["request"] == "the bound task"
    assert isinstance(failed, str) and "'no/such/file.py' is not a file in the repository" in failed
