"""`ask_reviewer`: the decision asked of the client's user through MCP elicitation, in process.

The client here is mcp's own `Client` with an elicitation callback standing in for the person
at the editor; the gate behind it is the real one (sandboxed tests, local CI, local forge).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_server.app import ServerDeps
from mcp_server.server import create_server
from mcp_server.tasks.model import TaskState
from tests.test_ci_gate import green_sample
from tests.test_review_gate import PLAN, coding, in_review, open_green, proposed
from tests.test_sandbox_tool import needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.anyio]


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[ServerDeps]:
    opened = open_green(green_sample(tmp_path / "green"), elicit_reviews=True)
    yield opened
    opened.ci.close()
    opened.tasks.store.close()


class Person:
    """Answers every form with `reply` and keeps what it was asked."""

    def __init__(self, action: str = "accept", **content: Any) -> None:
        self.action = action
        self.content = content
        self.asked: list[types.ElicitRequestParams] = []

    async def __call__(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(params)
        return types.ElicitResult(action=self.action, content=self.content if self.action == "accept" else None)  # type: ignore[arg-type]


async def ask(deps: ServerDeps, person: Person | None, task_id: str) -> types.CallToolResult:
    server = create_server(deps, "agent")
    async with Client(server, elicitation_callback=person) as client:
        return await client.call_tool("ask_reviewer", {"task_id": task_id})


def test_ask_reviewer_is_served_only_when_enabled(tmp_path: Path) -> None:
    off = open_green(green_sample(tmp_path / "off"))
    try:
        names = {spec.name for spec in create_server(off, "agent")._tool_manager.list_tools()}
    finally:
        off.tasks.store.close()
    assert "ask_reviewer" not in names and "propose_plan" in names


async def test_a_plan_approved_through_the_form_is_bound_to_its_sha(deps: ServerDeps) -> None:
    task = proposed(deps)
    person = Person(decision="approve", comment="fine by me")
    result = await ask(deps, person, task.id)
    assert not result.is_error, result
    assert result.structured_content is not None and result.structured_content["outcome"] == "approved"
    assert len(person.asked) == 1 and PLAN.goal in person.asked[0].message
    approved = [e for e in deps.tasks.store.events(task.id) if e.action == "plan_approved"]
    assert approved[-1].actor == f"human:{getpass.getuser()}" and approved[-1].payload["comment"] == "fine by me"
    assert deps.tasks.get(task.id).state == TaskState.CODING


async def test_a_declined_form_changes_nothing(deps: ServerDeps) -> None:
    task = proposed(deps)
    before = deps.tasks.get(task.id)
    result = await ask(deps, Person(action="decline"), task.id)
    assert result.structured_content is not None and result.structured_content["outcome"] == "declined"
    assert deps.tasks.get(task.id).version == before.version


async def test_a_pr_decision_through_the_form_goes_through_the_gate(deps: ServerDeps) -> None:
    task = in_review(deps)
    result = await ask(deps, Person(decision="request_changes", comment="name it twice()"), task.id)
    assert result.structured_content is not None and result.structured_content["outcome"] == "changes_requested"
    events = deps.tasks.store.events(task.id)
    asked = [e for e in events if e.action == "changes_requested"][-1]
    assert asked.payload["via"] == "mcp elicitation" and asked.payload["head_sha"] == deps.gate.pr(task.id).head_sha
    assert deps.tasks.get(task.id).state == TaskState.NEEDS_CHANGES


async def test_rejecting_without_a_comment_is_refused_and_changes_nothing(deps: ServerDeps) -> None:
    task = proposed(deps)
    result = await ask(deps, Person(decision="reject", comment=""), task.id)
    assert result.is_error and "comment is required" in str(result.content)
    assert deps.tasks.get(task.id).state == TaskState.PLAN_REVIEW


async def test_nothing_to_review_is_an_actionable_error(deps: ServerDeps) -> None:
    task = coding(deps)
    edit_free = await ask(deps, Person(decision="approve"), task.id)
    assert edit_free.is_error and "nothing waits for a reviewer" in str(edit_free.content)


async def test_a_client_without_elicitation_is_told_so_and_nothing_changes(deps: ServerDeps) -> None:
    task = proposed(deps)
    before = deps.tasks.get(task.id)
    with pytest.raises(BaseExceptionGroup) as caught:  # the client's task group wraps the protocol error
        await ask(deps, None, task.id)
    assert caught.group_contains(MCPError, match="elicitation capability")
    assert deps.tasks.get(task.id).version == before.version
