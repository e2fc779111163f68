"""The MCP contract through an in-process client: names, schemas, annotations, results, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mcp import Client

from mcp_server.app import ServerDeps
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from mcp_server.tasks.service import TaskLog, TaskPage

pytestmark = pytest.mark.anyio

TASK_TOOLS = {"start_task", "list_tasks", "get_task", "abort_task", "get_task_log"}
SEARCH_TOOLS = {"search_repo", "read_file", "repo_map", "search_knowledge", "add_knowledge"}
EDIT_TOOLS = {"apply_edit", "show_diff", "revert_edit"}
TEST_TOOLS = {"run_tests", "get_test_report", "ci_status"}
GATE_READ = {"get_plan", "get_pr", "merge_pr"}
PREVIEW_TOOLS = {"deploy_preview", "preview_status", "stop_preview"}
AGENT_ONLY = {"run_command", "propose_plan", "open_pr"}
AGENT_TOOLS = TASK_TOOLS | SEARCH_TOOLS | EDIT_TOOLS | TEST_TOOLS | GATE_READ | PREVIEW_TOOLS | AGENT_ONLY
REVIEWER_ONLY = {"approve_plan", "reject_plan", "approve_pr", "request_changes", "reject_pr", "approve_preview"}


async def test_the_agent_toolset_lists_exactly_its_tools_with_annotations(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == AGENT_TOOLS
    run = tools["run_command"].annotations
    assert run is not None and run.destructive_hint is True and run.open_world_hint is False
    for name in ("list_tasks", "get_task", "get_task_log"):
        assert tools[name].annotations is not None and tools[name].annotations.read_only_hint is True
    abort = tools["abort_task"].annotations
    assert abort is not None and abort.destructive_hint is True and abort.read_only_hint is False
    start = tools["start_task"].annotations
    assert start is not None and start.read_only_hint is False and start.destructive_hint is False
    for tool in tools.values():
        assert tool.output_schema is not None, f"{tool.name} has no output schema"
        assert tool.description and "\n" not in tool.description.strip().splitlines()[0]


async def test_listed_schemas_carry_no_generated_titles(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        listing = (await client.list_tools()).model_dump_json(by_alias=True)
    assert '"title":"Task Id"' not in listing.replace(" ", "")
    assert '"title":{' in listing.replace(" ", ""), "the Task.title property itself must stay"


async def test_a_task_goes_from_start_to_abort_with_structured_results(deps: ServerDeps, repo: Path) -> None:
    async with Client(create_server(deps)) as client:
        started = await client.call_tool("start_task", {"request": "Add a --verbose flag"})
        assert not started.is_error
        task = Task.model_validate(started.structured_content)
        assert task.state == "requested" and task.repo == str(repo.resolve()) and task.created_by == "agent:mcp-client"

        fetched = await client.call_tool("get_task", {"task_id": task.id[:6]})
        assert Task.model_validate(fetched.structured_content) == task

        listed = TaskPage.model_validate(
            (await client.call_tool("list_tasks", {"state": "requested"})).structured_content
        )
        assert [t.id for t in listed.tasks] == [task.id] and listed.total == 1

        aborted = await client.call_tool("abort_task", {"task_id": task.id, "reason": "duplicate of another task"})
        assert Task.model_validate(aborted.structured_content).state == "aborted"

        log = TaskLog.model_validate((await client.call_tool("get_task_log", {"task_id": task.id})).structured_content)
    assert [(e.action, e.actor) for e in log.events] == [
        ("created", "agent:mcp-client"),
        ("aborted", "agent:mcp-client"),
    ]
    assert log.chain.ok


async def test_the_reviewer_toolset_acts_as_a_human_and_has_no_agent_only_tools(deps: ServerDeps) -> None:
    async with Client(create_server(deps, toolset="reviewer")) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert listed == TASK_TOOLS | SEARCH_TOOLS | TEST_TOOLS | GATE_READ | PREVIEW_TOOLS | REVIEWER_ONLY | {
            "show_diff"
        }
        started = await client.call_tool("start_task", {"request": "change"})
    assert Task.model_validate(started.structured_content).created_by.startswith("human:")


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("get_task", {"task_id": "ffffff"}, "no task 'ffffff'"),
        ("get_task", {"task_id": "not an id"}, "not a task id"),
        ("get_task", {}, "task_id"),
        ("get_task_log", {"task_id": "0000"}, "no task"),
        ("list_tasks", {"state": "done"}, "state"),
        ("list_tasks", {"limit": 0}, "limit"),
        ("start_task", {"request": "x" * 20_001}, "the limit is 20,000"),
        ("start_task", {"request": ""}, "request is empty"),
        ("start_task", {"request": "x", "repo": "/definitely/not/here"}, "not a directory"),
        ("abort_task", {"task_id": "abcd"}, "reason"),
        ("no_such_tool", {}, "no_such_tool"),
    ],
)
async def test_bad_input_gets_an_actionable_error_and_stores_nothing(
    deps: ServerDeps, tool: str, arguments: dict[str, object], expected: str
) -> None:
    async with Client(create_server(deps)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert expected in result.content[0].text  # type: ignore[union-attr]
    assert deps.tasks.store.all_ids() == []


async def test_an_illegal_transition_over_mcp_changes_nothing(deps: ServerDeps) -> None:
    async with Client(create_server(deps)) as client:
        task = Task.model_validate((await client.call_tool("start_task", {"request": "x"})).structured_content)
        await client.call_tool("abort_task", {"task_id": task.id, "reason": "stop"})
        again = await client.call_tool("abort_task", {"task_id": task.id, "reason": "stop again"})
    assert again.is_error and "already ended" in again.content[0].text  # type: ignore[union-attr]
    assert len(deps.tasks.store.events(task.id)) == 2


async def test_unexpected_failures_are_masked_not_leaked(deps: ServerDeps, alice: Actor) -> None:
    task = deps.tasks.start("x", actor=alice)
    db = deps.settings.state_path / "tasks.db"
    with sqlite3.connect(db) as conn:
        conn.execute('UPDATE tasks SET data = \'{"secret": "s3cr3t"}\' WHERE id = ?', (task.id,))
    async with Client(create_server(deps)) as client:
        result = await client.call_tool("get_task", {"task_id": task.id})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "s3cr3t" not in text and "Traceback" not in text and "get_task" in text


async def test_the_task_resource_returns_the_task_as_json(deps: ServerDeps, alice: Actor) -> None:
    task = deps.tasks.start("resource me", actor=alice)
    async with Client(create_server(deps)) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == [
            "task://{task_id}",
            "shipway://tasks/{task_id}/preview/log",
            "shipway://test-runs/{run_id}/log",
        ]
        contents = (await client.read_resource(f"task://{task.id}")).contents
        assert Task.model_validate_json(contents[0].text) == task  # type: ignore[union-attr]
        with pytest.raises(Exception, match="no task"):
            await client.read_resource("task://ffff")
