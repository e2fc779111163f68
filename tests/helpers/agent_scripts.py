"""Scripts for ScriptedChatModel on the hello-cli sample: planner and coder rounds built from parts.

The planner steps are the recorded run in examples/replays/hello-cli-shout.json; the coder steps
are built from edit blocks, so a test can script a first attempt, a fix and an answer to review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.chat import Usage
from agents.scripted import Script, ScriptedCall, ScriptedChatModel, ScriptStep

REPLAY = Path(__file__).resolve().parents[2] / "examples" / "replays" / "hello-cli-shout.json"
RECORDED = Script.model_validate_json(REPLAY.read_text(encoding="utf-8"))
MODEL = RECORDED.model  # "replay-of-a-recorded-run"
REQUEST = "Add a --shout flag to hello that prints the greeting in capitals"

CLI_OLD_GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"'
CLI_NEW_GREET = (
    'def greet(name: str, shout: bool = False) -> str:\n    text = f"Hello, {name}!"\n'
    "    return text.upper() if shout else text"
)
CLI_OLD_MAIN = (
    '    parser.add_argument("name", nargs="?", default="world")\n    print(greet(parser.parse_args(argv).name))'
)
SHOUT_NO_HELP = '    parser.add_argument("--shout", action="store_true")\n'
SHOUT_HELP = '    parser.add_argument("--shout", action="store_true", help="print the greeting in capitals")\n'


def _main_with(option: str) -> str:
    return (
        '    parser.add_argument("name", nargs="?", default="world")\n'
        + option
        + "    args = parser.parse_args(argv)\n    print(greet(args.name, args.shout))"
    )


TEST_SHOUT = (
    "from hello.cli import greet, main\n\n\n"
    "def test_greet_can_shout() -> None:\n"
    '    assert greet("Ada", shout=True) == "HELLO, ADA!"\n\n\n'
    "def test_main_shouts_with_the_flag(capsys) -> None:  # type: ignore[no-untyped-def]\n"
    '    main(["--shout", "Ada"])\n'
    '    assert capsys.readouterr().out == "HELLO, ADA!\\n"\n'
)


def block(
    path: str, search: str | None = None, replace: str | None = None, content: str | None = None
) -> dict[str, Any]:
    if content is not None:
        return {"path": path, "content": content}
    return {"path": path, "search": search, "replace": replace}


SHOUT_BLOCKS_NO_HELP = [
    block("hello/cli.py", CLI_OLD_GREET, CLI_NEW_GREET),
    block("hello/cli.py", CLI_OLD_MAIN, _main_with(SHOUT_NO_HELP)),
    block("tests/test_shout.py", content=TEST_SHOUT),
]
"""The recorded coder's change, but without a help text for --shout (what a conventions test in CI rejects)."""

ADD_HELP = [block("hello/cli.py", SHOUT_NO_HELP, SHOUT_HELP)]
README = "# hello\n\n`hello NAME` greets NAME; `hello --shout NAME` says it in capitals.\n"
README_BLOCKS = [block("README.md", content=README)]


def step(expect: str | None = None, *calls: tuple[str, dict[str, Any]], content: str | None = None,
         tokens: tuple[int, int] = (1_000, 100)) -> ScriptStep:  # fmt: skip
    return ScriptStep(expect=expect, content=content, tool_calls=[ScriptedCall(name=n, arguments=a) for n, a in calls],
                      usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1]))  # fmt: skip


def planner_steps(extra_files: tuple[str, ...] = ()) -> list[ScriptStep]:
    """The recorded planner: search_repo, read_file, propose_plan (listing `extra_files` too)."""
    steps = [s.model_copy(deep=True) for s in RECORDED.steps[:3]]
    plan = steps[2].tool_calls[0].arguments["plan"]
    plan["files"] = [*plan["files"], *extra_files]
    return steps


def coder_steps(blocks: list[dict[str, Any]], expect: str = "Implement the approved plan",
                summary: str = "Added --shout; the tests pass.") -> list[ScriptStep]:  # fmt: skip
    """A coder round: apply_edit with `blocks`, run_tests (affected), then a summary without tool calls."""
    return [
        step(expect, ("apply_edit", {"blocks": blocks}), tokens=(2_600, 380)),
        step('"status":"applied"', ("run_tests", {"selection": "affected"}), tokens=(3_300, 25)),
        step('"status":"passed"', content=summary, tokens=(4_100, 48)),
    ]


def recorded_coder_steps() -> list[ScriptStep]:
    return [s.model_copy(deep=True) for s in RECORDED.steps[3:]]


def scripted(*steps: ScriptStep | list[ScriptStep]) -> ScriptedChatModel:
    """A ScriptedChatModel under the recorded model's name (so model_prices can price it), in memory only."""
    flat: list[ScriptStep] = []
    for part in steps:
        flat.extend(part if isinstance(part, list) else [part])
    return ScriptedChatModel(Script(model=MODEL, steps=flat))
