"""ScriptedChatModel: replays a script in order, and fails loudly when the agent strays from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from agents.chat import ToolSchema, Usage
from agents.scripted import Script, ScriptedCall, ScriptedChatModel, ScriptError, ScriptStep
from agents.toolbox import Toolbox
from mcp_server.app import ServerDeps
from mcp_server.server import create_server

pytestmark = pytest.mark.anyio

REPLAYS = Path(__file__).resolve().parents[2] / "examples" / "replays"
SHOUT = REPLAYS / "hello-cli-shout.json"


def tool(name: str) -> ToolSchema:
    return ToolSchema(name=name, description=name, parameters={"type": "object", "properties": {}})


TOOLS = [tool("read_file"), tool("search_repo"), tool("propose_plan")]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "rules"}, {"role": "user", "content": text}]


def two_steps() -> list[ScriptStep]:
    return [
        ScriptStep(
            expect="Plan this",
            content="Looking.",
            tool_calls=[
                ScriptedCall(name="search_repo", arguments={"query": "greet", "k": 5}),
                ScriptedCall(name="read_file", arguments={"path": "hello/cli.py"}),
            ],
            usage=Usage(input_tokens=1850, output_tokens=42),
        ),
        ScriptStep(content="All done."),
    ]


def write_script(path: Path, steps: list[ScriptStep], model: str = "replay") -> Path:
    path.write_text(Script(model=model, steps=steps).model_dump_json(), encoding="utf-8")
    return path


async def test_replies_come_in_order_with_json_arguments_and_usage() -> None:
    model = ScriptedChatModel(two_steps())
    assert model.name == "scripted" and model.used == 0

    first = await model.complete(user("Plan this change request"), TOOLS)
    assert first.content == "Looking." and first.model == "scripted"
    assert [(c.id, c.name) for c in first.tool_calls] == [("call_1_1", "search_repo"), ("call_1_2", "read_file")]
    assert json.loads(first.tool_calls[0].arguments) == {"query": "greet", "k": 5}
    assert json.loads(first.tool_calls[1].arguments) == {"path": "hello/cli.py"}
    assert first.usage == Usage(input_tokens=1850, output_tokens=42)
    assert model.used == 1

    second = await model.complete([*user("Plan this"), first.message()], [])
    assert second.content == "All done." and second.tool_calls == []
    assert second.usage == Usage(input_tokens=1_000, output_tokens=100), "the default usage of a step"
    assert model.used == 2
    assert len(model.calls) == 2 and model.calls[1][-1] == first.message()
    model.assert_done()


async def test_a_call_past_the_end_names_the_count_and_the_message() -> None:
    model = ScriptedChatModel([ScriptStep(content="only one")])
    await model.complete(user("go"), [])
    with pytest.raises(ScriptError, match=r"unexpected model call #2: the script has 1 steps") as caught:
        await model.complete(user("and again?"), [])
    assert "and again?" in str(caught.value)
    assert model.used == 1


async def test_an_unmet_expectation_raises_and_does_not_advance() -> None:
    model = ScriptedChatModel([ScriptStep(expect="Implement the approved plan", content="ok")])
    with pytest.raises(ScriptError, match=r"step 1 expects 'Implement the approved plan'") as caught:
        await model.complete(user("Plan this change request"), [])
    assert "Plan this change request" in str(caught.value)
    assert model.used == 0 and model.calls == []
    reply = await model.complete(user("Implement the approved plan: ..."), [])
    assert reply.content == "ok"


async def test_the_expectation_is_checked_against_the_newest_message_only() -> None:
    model = ScriptedChatModel([ScriptStep(expect="secret word", content="ok")])
    messages = [{"role": "user", "content": "the secret word"}, {"role": "tool", "content": "something else"}]
    with pytest.raises(ScriptError, match="expects 'secret word'"):
        await model.complete(messages, [])


async def test_structured_content_is_matched_as_json() -> None:
    model = ScriptedChatModel([ScriptStep(expect='"status": "applied"', content="ok")])
    reply = await model.complete([{"role": "user", "content": [{"type": "text", "status": "applied"}]}], [])
    assert reply.content == "ok"


async def test_calling_a_tool_not_offered_raises_naming_it_and_the_offer() -> None:
    model = ScriptedChatModel([ScriptStep(tool_calls=[ScriptedCall(name="run_command", arguments={"command": "ls"})])])
    with pytest.raises(ScriptError, match=r"step 1 calls 'run_command'.*offered: propose_plan, read_file, search_repo"):
        await model.complete(user("go"), TOOLS)
    with pytest.raises(ScriptError, match=r"offered: none"):
        await model.complete(user("go"), [])
    assert model.used == 0


async def test_assert_done_raises_while_steps_remain_and_passes_when_all_are_used() -> None:
    model = ScriptedChatModel(two_steps())
    with pytest.raises(ScriptError, match=r"2 scripted step\(s\) were never used; the next one answers search_repo"):
        model.assert_done()
    await model.complete(user("Plan this"), TOOLS)
    with pytest.raises(ScriptError, match=r"1 scripted step\(s\) were never used; the next one answers 'All done.'"):
        model.assert_done()
    await model.complete(user("anything"), TOOLS)
    model.assert_done()


async def test_a_cursor_file_carries_the_position_across_processes(tmp_path: Path) -> None:
    path = write_script(tmp_path / "run.json", two_steps(), model="replay-model")
    cursor = tmp_path / "run.json.cursor"

    planner = ScriptedChatModel.from_file(path)
    assert planner.name == "replay-model" and planner.cursor_file == cursor
    first = await planner.complete(user("Plan this"), TOOLS)
    assert first.content == "Looking."
    assert cursor.read_text(encoding="utf-8") == "1"
    assert not list(tmp_path.glob("*.tmp")), "the cursor is replaced atomically"

    coder = ScriptedChatModel.from_file(path)  # a second worker process, later
    assert coder.used == 1
    with pytest.raises(ScriptError, match="1 scripted step"):
        coder.assert_done()
    second = await coder.complete(user("Implement"), [])
    assert second.content == "All done." and cursor.read_text(encoding="utf-8") == "2"
    coder.assert_done()
    ScriptedChatModel.from_file(path).assert_done()
    with pytest.raises(ScriptError, match=r"#3: the script has 2 steps"):
        await ScriptedChatModel.from_file(path).complete(user("more"), [])


async def test_persist_false_writes_no_cursor(tmp_path: Path) -> None:
    path = write_script(tmp_path / "demo.json", two_steps())
    model = ScriptedChatModel.from_file(path, persist=False)
    assert model.cursor_file is None
    await model.complete(user("Plan this"), TOOLS)
    assert model.used == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"]
    assert ScriptedChatModel.from_file(path, persist=False).used == 0


def test_a_script_with_bad_usage_or_no_steps_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": [{"usage": {"input_tokens": -1}}]}), encoding="utf-8")
    with pytest.raises(ValueError, match="input_tokens"):
        ScriptedChatModel.from_file(bad)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"model": "m"}), encoding="utf-8")
    with pytest.raises(ValueError, match="steps"):
        ScriptedChatModel.from_file(missing)


@pytest.mark.parametrize("path", sorted(REPLAYS.glob("*.json")), ids=lambda p: p.name)
async def test_a_shipped_replay_calls_only_real_agent_tools_with_valid_arguments(deps: ServerDeps, path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    model = ScriptedChatModel.from_file(path, persist=False)
    assert model.script.label and model.script.steps
    async with Client(create_server(deps)) as client:
        served = [t.name for t in (await client.list_tools()).tools]
        toolbox = await Toolbox.open(client, served, bound={"task_id": "0000abcd"})
    schemas = {s.name: s for s in toolbox.schemas()}

    called = [call for step in model.script.steps for call in step.tool_calls]
    assert called, "the replay calls tools"
    for call in called:
        assert call.name in served, f"{path.name} calls {call.name!r}, which the agent toolset does not serve"
        jsonschema.validate(call.arguments, schemas[call.name].parameters)

    # Replayed against the real tool schemas, each step's expectation met, the whole script runs through.
    for step in model.script.steps:
        reply = await model.complete([{"role": "user", "content": step.expect or ""}], toolbox.schemas())
        assert [c.name for c in reply.tool_calls] == [c.name for c in step.tool_calls]
    model.assert_done()


def test_the_demo_replays_the_shout_script_checked_above() -> None:
    from mcp_server.demo import SCRIPT

    assert SCRIPT.resolve() == SHOUT and SHOUT in sorted(REPLAYS.glob("*.json"))
