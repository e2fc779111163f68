"""Shipway's own agents end to end: the worker, the driver's phases, the journal, budgets and takeovers.

Everything but the model is real: a copy of examples/hello-cli, the bubblewrap sandbox for test
runs, the local CI on the task branch's head, the local forge merging into `main`, and the
in-process MCP session the worker's agents call tools through. The model is a ScriptedChatModel
(the recorded planner of examples/replays/hello-cli-shout.json, coder rounds built in
tests/helpers/agent_scripts.py), or a wrapper around one that fails on a chosen call. No process
is spawned: `agent_launch=external`, and the tests run the worker themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agents.chat import Message, ModelError, Reply, ToolCall, ToolSchema, Usage
from agents.driver import ALL_TOOLS, PLANNER_TOOLS
from agents.scripted import ScriptedChatModel, ScriptError
from agents.toolbox import Toolbox
from mcp_server.agent_journal import RUNS_DIR, TaskJournal
from mcp_server.agent_queue import Lease
from mcp_server.agent_worker import AGENT, Worker, build_model, take_over
from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.errors import UserInputError
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Event, TaskState
from tests.helpers.agent_scripts import (
    ADD_HELP,
    MODEL,
    README,
    README_BLOCKS,
    RECORDED,
    REPLAY,
    REQUEST,
    SHOUT_BLOCKS_NO_HELP,
    coder_steps,
    planner_steps,
    recorded_coder_steps,
    scripted,
    step,
)
from tests.helpers.gitrepo import git
from tests.helpers.samples import commit_file, sample_repo
from tests.test_sandbox_tool import needs_bwrap

pytestmark = needs_bwrap

DEV = Actor(kind="human", name="dev")  # starts the tasks
CAROL = Actor(kind="human", name="carol")  # reviews them
DECISIONS = ("plan_approved", "plan_rejected", "pr_approved", "changes_requested", "pr_rejected", "pr_merged")
TOOL_EVENTS = ("planning_started", "plan_proposed", "edit_applied", "tests_run", "pr_opened")
ROUND_EVENTS = ("agent_round_started", "agent_step", "agent_round_finished")
DEAD_PID = 4_194_305  # above Linux's PID_MAX_LIMIT (2**22): no process ever has it

# A project convention the full suite checks by reading the source, without importing hello.cli:
# `affected` does not select it for a change to hello/cli.py, only the CI gate's full run catches it.
CONVENTIONS_TEST = """\
import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[1] / "hello" / "cli.py"


def test_every_cli_option_has_help() -> None:
    for node in ast.walk(ast.parse(CLI.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flag = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
            if str(flag).startswith("-"):
                assert any(k.arg == "help" for k in node.keywords), f"option {flag} has no help text"
"""


# -- fixtures and helpers


@pytest.fixture
def hello(tmp_path: Path) -> Iterator[Callable[..., ServerDeps]]:
    """Open Shipway on a fresh copy of examples/hello-cli (or on `repo`), with agents configured."""
    opened: list[ServerDeps] = []
    script = tmp_path / "script.json"  # settings need a model; the tests hand their own to the Worker
    shutil.copy(REPLAY, script)

    def make(repo: Path | None = None, **settings: Any) -> ServerDeps:
        repo = repo or sample_repo("hello-cli", tmp_path / f"hello-{len(opened)}")
        values = {"test_python": sys.executable, "agent_launch": "external", "embedder": "none",
                  "model_script": script, **settings}  # fmt: skip
        opened.append(open_deps(load_settings(repo=repo, **values)))
        return opened[-1]

    yield make
    for deps in opened:
        deps.ci.close()
        deps.tasks.store.close()


class FailingModel:
    """A scripted model whose call number `fail_on` raises `error` instead of answering."""

    def __init__(self, inner: ScriptedChatModel, fail_on: int, error: BaseException) -> None:
        self.inner = inner
        self.name = inner.name
        self.fail_on = fail_on
        self.error = error
        self.count = 0

    async def complete(self, messages: list[Message], tools: list[ToolSchema]) -> Reply:
        self.count += 1
        if self.count == self.fail_on:
            raise self.error
        return await self.inner.complete(messages, tools)


class RogueModel:
    """A model that calls whatever tools it likes, offered or not (a real model can)."""

    name = "rogue"

    def __init__(self, *replies: list[tuple[str, dict[str, Any]]]) -> None:
        self.replies = list(replies)
        self.offered: list[list[str]] = []

    async def complete(self, messages: list[Message], tools: list[ToolSchema]) -> Reply:
        self.offered.append([tool.name for tool in tools])
        calls = self.replies.pop(0)
        return Reply(tool_calls=[ToolCall(id=f"rogue_{n}", name=name, arguments=json.dumps(arguments))
                                 for n, (name, arguments) in enumerate(calls)],
                     usage=Usage(input_tokens=10, output_tokens=10), model=self.name)  # fmt: skip


def start(deps: ServerDeps, request: str = REQUEST) -> str:
    return deps.tasks.start(request, DEV, autonomous=True).id


def run(deps: ServerDeps, model: Any, task_id: str, name: str | None = None) -> list[tuple[str, str]]:
    """One worker pass over the queued task; (status, state) of each outcome."""
    outcomes = anyio.run(Worker(deps, model, name).run_queued, task_id)
    return [(o.status, o.state) for o in outcomes]


def crash(deps: ServerDeps, model: Any, task_id: str, name: str | None = None) -> BaseException:
    """A worker pass that must raise; the error the agents raised (out of the task groups it crossed)."""
    with pytest.raises(BaseException) as raised:
        anyio.run(Worker(deps, model, name).run_queued, task_id)
    return leaf(raised.value)


def leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def events(deps: ServerDeps, task_id: str, *actions: str) -> list[Event]:
    found = deps.tasks.store.events(task_id)
    return [e for e in found if e.action in actions] if actions else found


def actions(deps: ServerDeps, task_id: str) -> list[str]:
    return [e.action for e in events(deps, task_id)]


def journal(deps: ServerDeps, task_id: str) -> TaskJournal:
    return TaskJournal(deps.tasks, task_id, deps.settings.state_path)


def rounds(deps: ServerDeps, task_id: str) -> list[tuple[str, int, str, str | None]]:
    """(agent, number, reason, outcome) of every round, in order."""
    found = journal(deps, task_id)
    every = [(i.agent, i.number, i.reason, i.outcome) for a in ("planner", "coder") for i in found.rounds(a)]
    return sorted(every, key=lambda r: r[1])


def opening(deps: ServerDeps, task_id: str, round_no: int) -> str:
    """The user message a round opened with."""
    messages = journal(deps, task_id).conversation(round_no)
    assert [m["role"] for m in messages[:2]] == ["system", "user"]
    return str(messages[1]["content"])


def transcript(deps: ServerDeps, task_id: str, round_no: int) -> Path:
    return deps.settings.state_path / RUNS_DIR / task_id / f"round-{round_no}.jsonl"


def approve_plan(deps: ServerDeps, task_id: str) -> None:
    assert deps.gate.approve_plan(task_id, "ok", CAROL).task_state == TaskState.CODING


def queued(deps: ServerDeps, task_id: str) -> bool:
    """Waiting on the queue for a worker (not held)."""
    return deps.queue.lease(task_id) == Lease(task_id=task_id, worker=None, lease_until=None)


def tool_result(deps: ServerDeps, task_id: str, round_no: int, tool: str) -> dict[str, Any]:
    """The (last) result a round's agent got from `tool`, from the transcript."""
    messages = journal(deps, task_id).conversation(round_no)
    ids = {c["id"] for m in messages if m["role"] == "assistant" for c in m.get("tool_calls", [])
           if c["function"]["name"] == tool}  # fmt: skip
    results = [m["content"] for m in messages if m["role"] == "tool" and m["tool_call_id"] in ids]
    assert results, f"round {round_no} never called {tool}"
    return dict(json.loads(results[-1]))


def edited(original: str, blocks: list[dict[str, Any]], path: str) -> str:
    for block in blocks:
        if block["path"] == path:
            assert block["search"] in original
            original = original.replace(block["search"], block["replace"], 1)
    return original


# -- the whole loop


def test_the_agents_take_a_task_from_request_to_merge_and_every_act_is_logged_by_its_actor(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello(model_prices={MODEL: [1.0, 2.0]})
    repo = deps.settings.repo
    model = ScriptedChatModel.from_file(REPLAY, persist=False)
    task_id = start(deps)
    assert queued(deps, task_id)  # starting it woke the agents

    assert run(deps, model, task_id) == [("waiting", "plan_review")]
    assert deps.queue.lease(task_id) is None  # waiting for a person: off the queue
    approve_plan(deps, task_id)
    assert queued(deps, task_id)  # the approval handed it back to the agents
    assert run(deps, model, task_id) == [("waiting", "review")]
    assert deps.queue.lease(task_id) is None
    deps.gate.approve_pr(task_id, "lgtm", CAROL)
    assert deps.gate.merge_pr(task_id, CAROL).state == "merged"
    model.assert_done()

    # The recorded change is what landed on main.
    original = (Path(__file__).resolve().parents[1] / "examples" / "hello-cli" / "hello" / "cli.py").read_text()
    blocks = RECORDED.steps[3].tool_calls[0].arguments["blocks"]
    assert git(repo, "show", "main:hello/cli.py") == edited(original, blocks, "hello/cli.py").strip()
    assert git(repo, "show", "main:tests/test_shout.py") == blocks[2]["content"].strip()
    assert deps.tasks.get(task_id).state == TaskState.MERGED

    log = events(deps, task_id)
    assert [e.action for e in log] == [
        "created",
        "agent_round_started", "agent_step", "agent_step", "planning_started", "plan_proposed", "agent_step",
        "agent_round_finished", "agent_waiting",
        "plan_approved",
        "agent_round_started", "edit_applied", "agent_step", "tests_run", "agent_step", "agent_step",
        "agent_round_finished", "pr_opened", "ci_started", "ci_passed", "agent_waiting",
        "pr_approved", "pr_merged",
    ]  # fmt: skip
    for event in log:
        if event.action in ROUND_EVENTS:
            assert event.actor == f"agent:{event.payload['agent']}", event
            assert event.actor in ("agent:planner", "agent:coder")
        elif event.action in TOOL_EVENTS:
            assert event.actor == "agent:shipway", event  # the worker's MCP session, through the same tools
        elif event.action in DECISIONS:
            assert event.actor == "human:carol", event
        elif event.action.startswith("ci_"):
            assert event.actor == "system:ci", event
        elif event.action == "agent_waiting":
            assert event.actor == "system:agents", event
    assert not any(e.actor.startswith("agent:") for e in log if e.action in DECISIONS)
    assert "gate_refused" not in [e.action for e in log]
    assert [e.actor for e in log if e.action == "created"] == ["human:dev"]
    assert rounds(deps, task_id) == [("planner", 1, "plan", "proposed"), ("coder", 2, "implement", "done")]

    # Each step is accounted: tokens as the model reported them, priced from model_prices.
    steps = events(deps, task_id, "agent_step")
    assert [(s.payload["agent"], s.payload["round"], s.payload["step"]) for s in steps] == [
        ("planner", 1, 1), ("planner", 1, 2), ("planner", 1, 3), ("coder", 2, 1), ("coder", 2, 2), ("coder", 2, 3),
    ]  # fmt: skip
    for recorded, event in zip(RECORDED.steps, steps, strict=True):
        usage = event.payload["usage"]
        assert usage == recorded.usage.model_dump()
        assert event.payload["cost_usd"] == pytest.approx(
            (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1_000_000
        )
        assert event.payload["model"] == MODEL and event.payload["wall_s"] >= 0
        assert [c["name"] for c in event.payload["calls"]] == [c.name for c in recorded.tool_calls]
        assert all(c["ok"] for c in event.payload["calls"])
    spend = journal(deps, task_id).spend()
    tokens_in = sum(s.usage.input_tokens for s in RECORDED.steps)
    tokens_out = sum(s.usage.output_tokens for s in RECORDED.steps)
    assert (spend.steps, spend.input_tokens, spend.output_tokens) == (6, tokens_in, tokens_out)
    assert spend.cost_usd == pytest.approx((tokens_in + 2 * tokens_out) / 1_000_000)

    # The transcripts are the ones the log vouches for, and the PR says what the coder said.
    assert len(journal(deps, task_id).conversation(1)) == 2 + 3 * 2  # opening, then each step's call and result
    assert events(deps, task_id, "pr_opened")[0].payload["body"].startswith(RECORDED.steps[5].content or "?")
    assert deps.tasks.verify(task_id).ok


# -- what agents may not do


def test_the_planner_is_offered_only_planning_tools_and_no_toolbox_has_a_decision(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello()
    task_id = deps.tasks.start(REQUEST, DEV).id

    async def offered() -> tuple[list[str], list[str], list[str], list[dict[str, Any]]]:
        async with Client(create_server(deps, "agent", actor=AGENT)) as client:
            served = [tool.name for tool in (await client.list_tools()).tools]
            toolbox = await Toolbox.open(client, ALL_TOOLS, {"task_id": task_id})
            planner = toolbox.schemas(PLANNER_TOOLS)
            return served, toolbox.names, [s.name for s in planner], [s.parameters for s in planner]

    served, names, planner, parameters = anyio.run(offered)
    deciding = ("approve", "reject", "request_changes", "merge")
    # The agent toolset serves no decision (merge_pr it does serve: the gate merges only what a human approved)...
    assert not [name for name in served if name.startswith(deciding[:3])]
    # ...and the toolbox the worker's agents get offers none at all, merge included.
    assert not [name for name in names if name.startswith(deciding)]
    assert planner == list(PLANNER_TOOLS)
    assert not [name for name in planner if name.startswith(deciding)]
    assert all("task_id" not in p.get("properties", {}) for p in parameters)  # bound, never chosen by the model


def test_a_planner_calling_a_tool_it_was_not_offered_fails_the_script_and_decides_nothing(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello()
    task_id = start(deps)
    model = scripted(step("Plan this change request", ("approve_plan", {"comment": "self-approved"})))
    error = crash(deps, model, task_id)
    assert isinstance(error, ScriptError), repr(error)
    assert "calls 'approve_plan', which the agent was not offered" in str(error)
    assert f"offered: {', '.join(sorted(PLANNER_TOOLS))})" in str(error)

    assert deps.tasks.get(task_id).state == TaskState.REQUESTED
    assert actions(deps, task_id) == ["created", "agent_round_started", "agent_crashed"]
    crashed = events(deps, task_id, "agent_crashed")[0]
    assert crashed.actor == "system:agents" and crashed.payload["error"].startswith("ScriptError: ")
    assert deps.tasks.verify(task_id).ok


def test_a_model_calling_decision_tools_anyway_is_told_they_do_not_exist(hello: Callable[..., ServerDeps]) -> None:
    deps = hello()
    task_id = start(deps)
    plan = RECORDED.steps[2].tool_calls[0].arguments
    # Propose, then try to approve its own plan and merge, in the same step.
    model = RogueModel([("propose_plan", plan), ("approve_plan", {"task_id": task_id, "comment": "mine"}),
                        ("merge_pr", {"task_id": task_id})])  # fmt: skip
    assert run(deps, model, task_id) == [("waiting", "plan_review")]
    assert model.offered == [list(PLANNER_TOOLS)]

    assert deps.tasks.get(task_id).state == TaskState.PLAN_REVIEW
    assert deps.gate.plan(task_id).status == "proposed"
    assert not events(deps, task_id, *DECISIONS)
    assert not events(deps, task_id, "gate_refused")  # it never reached a gate: the toolbox has no such tools
    (step_event,) = events(deps, task_id, "agent_step")
    assert step_event.payload["calls"] == [
        {"name": "propose_plan", "ok": True}, {"name": "approve_plan", "ok": False}, {"name": "merge_pr", "ok": False},
    ]  # fmt: skip
    results = [m["content"] for m in journal(deps, task_id).conversation(1) if m["role"] == "tool"]
    assert "there is no tool 'approve_plan' here" in results[1]
    assert "there is no tool 'merge_pr' here" in results[2]
    assert deps.tasks.verify(task_id).ok


# -- budgets


def test_the_step_budget_fails_the_task_with_a_reason_naming_the_setting(hello: Callable[..., ServerDeps]) -> None:
    deps = hello(agent_max_steps=2)
    task_id = start(deps)
    model = scripted(planner_steps())
    outcomes = anyio.run(Worker(deps, model).run_queued, task_id)
    assert [(o.status, o.state) for o in outcomes] == [("failed", TaskState.FAILED)]
    assert "SHIPWAY_AGENT_MAX_STEPS" in outcomes[0].reason

    task = deps.tasks.get(task_id)
    assert task.state == TaskState.FAILED and "SHIPWAY_AGENT_MAX_STEPS" in (task.reason or "")
    assert len(model.calls) == 2  # stopped before the third of its three steps
    failed = events(deps, task_id)[-1]
    assert (failed.action, failed.actor, failed.to_state) == ("failed", "system:agents", TaskState.FAILED)
    assert "2 model calls used, the limit is 2" in failed.payload["reason"]
    assert "SHIPWAY_AGENT_MAX_STEPS" in failed.payload["reason"]
    assert deps.queue.lease(task_id) is None
    assert deps.tasks.verify(task_id).ok


def test_the_budget_counts_every_run_of_the_task(hello: Callable[..., ServerDeps]) -> None:
    deps = hello(agent_max_steps=4)
    task_id = start(deps)
    model = scripted(planner_steps(), recorded_coder_steps())
    assert run(deps, model, task_id) == [("waiting", "plan_review")]  # 3 calls
    approve_plan(deps, task_id)
    assert run(deps, model, task_id) == [("failed", "failed")]  # the 4th call (apply_edit), then the limit
    assert len(model.calls) == 4
    assert "4 model calls used, the limit is 4 (SHIPWAY_AGENT_MAX_STEPS)" in (deps.tasks.get(task_id).reason or "")
    assert events(deps, task_id)[-1].actor == "system:agents"
    assert deps.tasks.verify(task_id).ok


# -- pauses, crashes and takeovers


def test_a_model_error_pauses_the_task_and_continue_resumes_the_round_from_the_journal(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello()
    task_id = start(deps)
    flaky = FailingModel(scripted(planner_steps()), 2, ModelError("the model server answered 429", retryable=True))
    outcomes = anyio.run(Worker(deps, flaky).run_queued, task_id)
    assert [(o.status, o.state) for o in outcomes] == [("paused", TaskState.REQUESTED)]
    assert f"shipway task continue {task_id}" in outcomes[0].reason

    assert deps.tasks.get(task_id).state == TaskState.REQUESTED  # nothing moved
    assert actions(deps, task_id) == ["created", "agent_round_started", "agent_step", "agent_paused"]
    paused = events(deps, task_id)[-1]
    assert paused.actor == "system:agents"
    assert paused.payload == {"reason": "the model server answered 429", "retryable": True}
    assert deps.queue.lease(task_id) is None

    assert take_over(deps, task_id) == task_id
    assert queued(deps, task_id)
    resumed = scripted(planner_steps()[1:])
    assert run(deps, resumed, task_id) == [("waiting", "plan_review")]
    resumed.assert_done()

    # The resumed model was handed the conversation so far: opening, the first step and its tool result.
    first_call = resumed.calls[0]
    assert [m["role"] for m in first_call] == ["system", "user", "assistant", "tool"]
    assert first_call[2]["tool_calls"][0]["function"]["name"] == "search_repo"
    assert "hello/cli.py" in first_call[3]["content"] and "def greet" in first_call[3]["content"]
    assert first_call == flaky.inner.calls[0] + first_call[2:]
    # One planner round, continued: no second round, steps numbered on.
    assert len(events(deps, task_id, "agent_round_started")) == 1
    assert rounds(deps, task_id) == [("planner", 1, "plan", "proposed")]
    assert [e.payload["step"] for e in events(deps, task_id, "agent_step")] == [1, 2, 3]
    assert deps.tasks.verify(task_id).ok


def test_a_crashed_worker_is_recorded_and_continue_waits_for_a_live_worker_then_resumes(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello()
    task_id = start(deps)
    crashing = FailingModel(scripted(planner_steps()), 2, RuntimeError("the worker fell over"))
    error = crash(deps, crashing, task_id, name="crashed-worker")
    assert isinstance(error, RuntimeError) and str(error) == "the worker fell over", repr(error)

    crashed = events(deps, task_id)[-1]
    assert (crashed.action, crashed.actor) == ("agent_crashed", "system:agents")
    assert crashed.payload == {"error": "RuntimeError: the worker fell over"}
    assert deps.tasks.get(task_id).state == TaskState.REQUESTED
    lease = deps.queue.lease(task_id)
    assert lease is not None and lease.worker == "crashed-worker" and lease.live()  # a crash does not let go
    # A name without this host's name is a worker elsewhere: assumed alive.
    with pytest.raises(UserInputError, match=f"worker crashed-worker is running task {task_id}"):
        take_over(deps, task_id)

    # Another worker of this host, whose process (this one) is alive, holds the task.
    deps.queue.expire(task_id)
    alive = f"{socket.gethostname()}:{os.getpid()}"
    assert deps.queue.claim(alive, 60.0, task_id) == task_id
    with pytest.raises(UserInputError, match=f"worker {alive} is running task {task_id}") as refused:
        take_over(deps, task_id)
    assert "wait for it" in str(refused.value)
    assert deps.queue.lease(task_id).worker == alive  # type: ignore[union-attr]

    deps.queue.expire(task_id)  # it died
    assert take_over(deps, task_id) == task_id
    assert queued(deps, task_id)
    resumed = scripted(planner_steps()[1:])
    assert run(deps, resumed, task_id) == [("waiting", "plan_review")]
    resumed.assert_done()
    assert [m["role"] for m in resumed.calls[0]] == ["system", "user", "assistant", "tool"]
    assert rounds(deps, task_id) == [("planner", 1, "plan", "proposed")]
    assert deps.tasks.verify(task_id).ok


def test_continue_takes_over_from_a_dead_worker_of_this_host_and_refuses_what_it_cannot_continue(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello()
    task_id = start(deps)
    dead = f"{socket.gethostname()}:{DEAD_PID}"
    assert deps.queue.claim(dead, 60.0, task_id) == task_id
    assert take_over(deps, task_id) == task_id  # its process is gone: no need to wait for the lease
    assert queued(deps, task_id)

    manual = deps.tasks.start("Do it by hand", DEV).id
    with pytest.raises(UserInputError, match="driven by an MCP client's agent"):
        take_over(deps, manual)
    assert deps.queue.lease(manual) is None
    deps.tasks.abort(task_id, "not needed", DEV)
    with pytest.raises(UserInputError, match="already ended"):
        take_over(deps, task_id)


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_a_tampered_transcript_stops_the_resume_with_an_error_naming_the_file(
    hello: Callable[..., ServerDeps], damage: str
) -> None:
    deps = hello()
    task_id = start(deps)
    flaky = FailingModel(scripted(planner_steps()), 2, ModelError("timed out", retryable=True))
    assert run(deps, flaky, task_id) == [("paused", "requested")]
    path = transcript(deps, task_id, 1)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2  # the opening and the one completed step
    if damage == "changed":
        assert b"hello/cli.py" in lines[1]
        path.write_bytes(lines[0] + b"\n" + lines[1].replace(b"hello/cli.py", b"evil/cli.py") + b"\n")
    else:
        path.unlink()

    take_over(deps, task_id)
    resumed = scripted(planner_steps()[1:])
    error = crash(deps, resumed, task_id)
    assert isinstance(error, UserInputError), repr(error)
    line = 2 if damage == "changed" else 1
    assert f"the transcript of round 1 of task {task_id} is missing or was changed at line {line}" in str(error)
    assert str(path) in str(error)
    assert resumed.calls == []  # the model never saw the damaged conversation
    crashed = events(deps, task_id)[-1]
    assert crashed.action == "agent_crashed" and str(path) in crashed.payload["error"]
    assert deps.tasks.get(task_id).state == TaskState.REQUESTED
    assert deps.tasks.verify(task_id).ok  # the log itself is intact; it is what exposed the transcript


def test_an_error_from_the_agents_reaches_the_worker_s_caller_as_itself(hello: Callable[..., ServerDeps]) -> None:
    deps = hello()
    task_id = start(deps)
    flaky = FailingModel(scripted(planner_steps()), 2, ModelError("timed out", retryable=True))
    assert run(deps, flaky, task_id) == [("paused", "requested")]
    transcript(deps, task_id, 1).unlink()
    take_over(deps, task_id)
    with pytest.raises(UserInputError, match="the transcript of round 1"):
        anyio.run(Worker(deps, scripted(planner_steps()[1:])).run_queued, task_id)


# -- decisions arriving while a worker runs


def test_a_plan_sent_back_as_the_worker_stops_makes_it_go_round_again(
    hello: Callable[..., ServerDeps], monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = hello()
    task_id = start(deps)
    comment = "Keep greet() as it is; add a separate shout() instead"
    replan = step('<untrusted source="reviewer">', ("propose_plan", RECORDED.steps[2].tool_calls[0].arguments))
    model = scripted(planner_steps(), replan)
    record = deps.tasks.record

    def record_then_decide(task: str, actor: Actor, action: str, *args: Any, **kwargs: Any) -> Any:
        done = record(task, actor, action, *args, **kwargs)
        if action == "agent_waiting" and not events(deps, task, "plan_rejected"):
            deps.gate.reject_plan(task, comment, CAROL)  # the reviewer is quick: the worker has not let go yet
        return done

    monkeypatch.setattr(deps.tasks, "record", record_then_decide)
    assert run(deps, model, task_id) == [("waiting", "plan_review"), ("waiting", "plan_review")]
    model.assert_done()
    assert deps.queue.lease(task_id) is None
    assert rounds(deps, task_id) == [("planner", 1, "plan", "proposed"), ("planner", 2, "replan", "proposed")]
    assert f'<untrusted source="reviewer">\n{comment}\n</untrusted>' in opening(deps, task_id, 2)
    assert deps.tasks.verify(task_id).ok


def test_a_decision_between_the_workers_last_look_and_its_release_is_not_lost(
    hello: Callable[..., ServerDeps], monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = hello()
    task_id = start(deps)
    replan = step('<untrusted source="reviewer">', ("propose_plan", RECORDED.steps[2].tool_calls[0].arguments))
    model = scripted(planner_steps(), replan)
    release = deps.queue.release

    def decide_then_release(task: str, worker: str) -> bool:
        if not events(deps, task, "plan_rejected"):
            deps.gate.reject_plan(task, "Smaller, please", CAROL)  # after the worker's last look, before it lets go
        return release(task, worker)

    monkeypatch.setattr(deps.queue, "release", decide_then_release)
    assert run(deps, model, task_id) == [("waiting", "plan_review"), ("waiting", "plan_review")]
    model.assert_done()  # it went round again and re-planned
    assert rounds(deps, task_id) == [("planner", 1, "plan", "proposed"), ("planner", 2, "replan", "proposed")]
    assert deps.queue.lease(task_id) is None


# -- red CI, review comments, policy


def test_a_red_ci_sends_the_coder_back_with_the_failures_until_it_is_green(
    hello: Callable[..., ServerDeps], tmp_path: Path
) -> None:
    repo = sample_repo("hello-cli", tmp_path / "conventions")
    commit_file(repo, "tests/test_conventions.py", CONVENTIONS_TEST, "every CLI option has a help text")
    deps = hello(repo)
    task_id = start(deps)
    failing_test = "tests/test_conventions.py::test_every_cli_option_has_help"
    model = scripted(planner_steps(), coder_steps(SHOUT_BLOCKS_NO_HELP),
                     coder_steps(ADD_HELP, expect=failing_test, summary="Gave --shout a help text."))  # fmt: skip
    assert run(deps, model, task_id) == [("waiting", "plan_review")]
    approve_plan(deps, task_id)
    assert run(deps, model, task_id) == [("waiting", "review")]
    model.assert_done()

    # The coder's own (affected) run could not see the convention; CI's full run could.
    assert tool_result(deps, task_id, 2, "run_tests")["selected"] == ["tests/test_cli.py", "tests/test_shout.py"]
    after_approval = actions(deps, task_id)[actions(deps, task_id).index("plan_approved") + 1 :]
    assert [a for a in after_approval if a not in ("agent_step", "coding")] == [
        "agent_round_started", "edit_applied", "tests_run", "agent_round_finished", "pr_opened", "ci_started",
        "ci_failed",
        "agent_round_started", "edit_applied", "tests_run", "agent_round_finished", "pr_opened", "ci_started",
        "ci_passed", "agent_waiting",
    ]  # fmt: skip
    failed, passed = events(deps, task_id, "ci_failed")[0], events(deps, task_id, "ci_passed")[0]
    assert failed.actor == passed.actor == "system:ci"
    assert failed.to_state == TaskState.NEEDS_CHANGES and failed.payload["totals"]["failed"] == 1
    first_pr, second_pr = events(deps, task_id, "pr_opened")
    assert failed.payload["commit"] == first_pr.payload["head_sha"]
    assert passed.payload["commit"] == second_pr.payload["head_sha"] != first_pr.payload["head_sha"]
    assert first_pr.actor == second_pr.actor == "agent:shipway"

    assert rounds(deps, task_id) == [
        ("planner", 1, "plan", "proposed"), ("coder", 2, "implement", "done"), ("coder", 3, "ci failure", "done"),
    ]  # fmt: skip
    brief = opening(deps, task_id, 3)
    assert "CI failed on the pull request" in brief and '<untrusted source="ci">' in brief
    assert failing_test in brief and "option --shout has no help text" in brief
    head = second_pr.payload["head_sha"]
    assert 'help="print the greeting in capitals"' in git(deps.settings.repo, "show", f"{head}:hello/cli.py")
    assert deps.tasks.get(task_id).state == TaskState.REVIEW
    assert deps.tasks.verify(task_id).ok


def test_without_ci_retries_a_red_ci_fails_the_task_naming_the_setting(
    hello: Callable[..., ServerDeps], tmp_path: Path
) -> None:
    repo = sample_repo("hello-cli", tmp_path / "conventions")
    commit_file(repo, "tests/test_conventions.py", CONVENTIONS_TEST, "every CLI option has a help text")
    deps = hello(repo, agent_ci_retries=0)
    task_id = start(deps)
    model = scripted(planner_steps(), coder_steps(SHOUT_BLOCKS_NO_HELP))
    assert run(deps, model, task_id) == [("waiting", "plan_review")]
    approve_plan(deps, task_id)
    outcomes = anyio.run(Worker(deps, model).run_queued, task_id)
    model.assert_done()
    assert [(o.status, o.state) for o in outcomes] == [("failed", TaskState.FAILED)]
    assert "SHIPWAY_AGENT_CI_RETRIES" in outcomes[0].reason

    log = events(deps, task_id)
    assert [e.action for e in log[-2:]] == ["ci_failed", "failed"]
    assert log[-1].actor == "system:agents" and "SHIPWAY_AGENT_CI_RETRIES" in log[-1].payload["reason"]
    assert "SHIPWAY_AGENT_CI_RETRIES" in (deps.tasks.get(task_id).reason or "")
    assert [r[2] for r in rounds(deps, task_id)] == ["plan", "implement"]  # no fix attempt
    assert deps.tasks.verify(task_id).ok


def test_requested_changes_wake_the_coder_with_the_comment_and_the_pr_comes_back_to_review(
    hello: Callable[..., ServerDeps],
) -> None:
    deps = hello()
    task_id = start(deps)
    comment = "Also say it in the README"
    model = scripted(planner_steps(extra_files=("README.md",)), recorded_coder_steps(),
                     coder_steps(README_BLOCKS, expect=f'<untrusted source="reviewer">\n{comment}\n</untrusted>',
                                 summary="Documented --shout in the README."))  # fmt: skip
    assert run(deps, model, task_id) == [("waiting", "plan_review")]
    approve_plan(deps, task_id)
    assert run(deps, model, task_id) == [("waiting", "review")]
    first_head = events(deps, task_id, "pr_opened")[0].payload["head_sha"]

    deps.gate.request_changes(task_id, comment, CAROL)
    assert deps.tasks.get(task_id).state == TaskState.NEEDS_CHANGES
    assert queued(deps, task_id)  # the dispatch woke the agents
    assert run(deps, model, task_id) == [("waiting", "review")]
    model.assert_done()

    asked = events(deps, task_id, "changes_requested")
    assert [(e.actor, e.payload["comment"]) for e in asked] == [("human:carol", comment)]
    assert rounds(deps, task_id)[-1] == ("coder", 3, "review", "done")
    assert f'<untrusted source="reviewer">\n{comment}\n</untrusted>' in opening(deps, task_id, 3)
    after = actions(deps, task_id)[actions(deps, task_id).index("changes_requested") + 1 :]
    assert [a for a in after if a not in ("agent_step", "coding")] == [
        "agent_round_started", "edit_applied", "tests_run", "agent_round_finished", "pr_opened", "ci_started",
        "ci_passed", "agent_waiting",
    ]  # fmt: skip
    second = events(deps, task_id, "pr_opened")[1]
    head = second.payload["head_sha"]
    assert head != first_head and events(deps, task_id, "ci_passed")[-1].payload["commit"] == head
    assert git(deps.settings.repo, "show", f"{head}:README.md") == README.strip()
    assert deps.gate.pr(task_id).head_sha == head
    assert not any(e.actor.startswith("agent:") for e in events(deps, task_id, *DECISIONS))
    assert deps.tasks.verify(task_id).ok


def test_with_plan_review_auto_one_worker_run_plans_codes_and_reaches_review(
    hello: Callable[..., ServerDeps], monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = hello(plan_review="auto", agent_lease_s=0.6)  # renewed every 0.2 s
    task_id = start(deps)
    held_after_tests: list[bool] = []
    run_task = deps.tests.run_task

    def run_task_watching_the_lease(*args: Any, **kwargs: Any) -> Any:
        report = run_task(*args, **kwargs)  # seconds, far longer than the lease
        lease = deps.queue.lease(task_id)
        held_after_tests.append(lease is not None and lease.live())
        return report

    monkeypatch.setattr(deps.tests, "run_task", run_task_watching_the_lease)
    model = scripted(planner_steps(), recorded_coder_steps())
    assert run(deps, model, task_id) == [("waiting", "review")]
    model.assert_done()
    assert held_after_tests == [True]  # the worker kept its lease alive while the tests ran

    approved = events(deps, task_id, "plan_approved")
    assert [(e.actor, e.to_state) for e in approved] == [("system:plan-policy", TaskState.CODING)]
    assert "SHIPWAY_PLAN_REVIEW=auto" in approved[0].payload["comment"]
    assert [e.to_state for e in events(deps, task_id, "agent_waiting")] == [TaskState.REVIEW]  # never stopped before
    assert rounds(deps, task_id) == [("planner", 1, "plan", "proposed"), ("coder", 2, "implement", "done")]
    assert deps.queue.lease(task_id) is None
    assert deps.tasks.verify(task_id).ok


# -- no model


def test_an_autonomous_task_needs_a_model_and_none_is_created_without_one(hello: Callable[..., ServerDeps]) -> None:
    deps = hello(model_script=None)
    assert not deps.settings.agents_configured
    with pytest.raises(UserInputError) as refused:
        deps.tasks.start(REQUEST, DEV, autonomous=True)
    assert "SHIPWAY_MODEL" in str(refused.value) and "--manual" in str(refused.value)
    assert deps.tasks.page().total == 0
    with pytest.raises(UserInputError, match="SHIPWAY_MODEL"):
        build_model(deps.settings)

    manual = deps.tasks.start(REQUEST, DEV)  # driven by the client's own agent: never queued
    assert not manual.autonomous and deps.queue.lease(manual.id) is None
    assert deps.tasks.page().total == 1
