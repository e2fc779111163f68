"""`ScriptedChatModel`: a chat model that replays a script, and fails loudly when the agent strays.

It is the one part replaced in tests, and the engine of `shipway demo`. Each step says what the
newest message must contain (`expect`), and what the model answers: text, tool calls, usage.
It raises `ScriptError` on a call past the end of the script, on a step whose expectation the
conversation does not meet, or on a call to a tool the agent was not offered; `assert_done()`
checks that every step was used.

A script can live in a JSON file (`{"model": ..., "steps": [...]}`); with a cursor file next
to it, the position survives across processes, so one script can drive a task through the
several worker runs it takes (planning, then coding after the plan is approved).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agents.chat import Message, Reply, ToolCall, ToolSchema, Usage

PREVIEW_CHARS = 300


class ScriptError(AssertionError):
    """The agent did something the script did not foresee."""


class ScriptedCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptStep(BaseModel):
    expect: str | None = Field(default=None, description="Text the newest message must contain")
    content: str | None = None
    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=lambda: Usage(input_tokens=1_000, output_tokens=100))


class Script(BaseModel):
    model: str = "scripted"
    label: str = Field(default="", description="Shown to people, e.g. 'a replay of a recorded run'")
    steps: list[ScriptStep]


def _text(message: Message) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return json.dumps(content) if content is not None else ""


class ScriptedChatModel:
    def __init__(self, script: Script | list[ScriptStep], cursor_file: Path | None = None) -> None:
        self.script = script if isinstance(script, Script) else Script(steps=script)
        self.name = self.script.model
        self.cursor_file = cursor_file
        self._cursor = 0
        self.calls: list[list[Message]] = []

    def at(self, position: int) -> ScriptedChatModel:
        """A copy that answers from step `position + 1`, with no cursor file. A worker running many tasks
        off one script positions each task's copy by the model calls its journal holds."""
        copy = ScriptedChatModel(self.script)
        copy._cursor = position
        return copy

    @classmethod
    def from_file(cls, path: Path, *, persist: bool = True) -> ScriptedChatModel:
        script = Script.model_validate_json(path.read_text(encoding="utf-8"))
        return cls(script, cursor_file=path.with_name(path.name + ".cursor") if persist else None)

    @property
    def used(self) -> int:
        if self.cursor_file is not None and self.cursor_file.exists():
            return int(self.cursor_file.read_text(encoding="utf-8") or 0)
        return self._cursor

    def _advance(self, to: int) -> None:
        self._cursor = to
        if self.cursor_file is not None:
            partial = self.cursor_file.with_name(self.cursor_file.name + ".tmp")
            partial.write_text(str(to), encoding="utf-8")
            os.replace(partial, self.cursor_file)

    async def complete(self, messages: list[Message], tools: list[ToolSchema]) -> Reply:
        index = self.used
        steps = self.script.steps
        newest = _text(messages[-1]) if messages else ""
        if index >= len(steps):
            raise ScriptError(f"unexpected model call #{index + 1}: the script has {len(steps)} steps; "
                              f"the newest message was: {newest[:PREVIEW_CHARS]!r}")  # fmt: skip
        step = steps[index]
        if step.expect is not None and step.expect not in newest:
            raise ScriptError(f"step {index + 1} expects {step.expect!r} in the newest message, which was: "
                              f"{newest[:PREVIEW_CHARS]!r}")  # fmt: skip
        offered = {tool.name for tool in tools}
        for call in step.tool_calls:
            if call.name not in offered:
                raise ScriptError(f"step {index + 1} calls {call.name!r}, which the agent was not offered "
                                  f"(offered: {', '.join(sorted(offered)) or 'none'})")  # fmt: skip
        self.calls.append(list(messages))
        self._advance(index + 1)
        calls = [ToolCall(id=f"call_{index + 1}_{n}", name=c.name, arguments=json.dumps(c.arguments))
                 for n, c in enumerate(step.tool_calls, 1)]  # fmt: skip
        return Reply(content=step.content, tool_calls=calls, usage=step.usage, model=self.name)

    def assert_done(self) -> None:
        left = len(self.script.steps) - self.used
        if left > 0:
            upcoming = self.script.steps[self.used]
            what = ", ".join(c.name for c in upcoming.tool_calls) or repr((upcoming.content or "")[:80])
            raise ScriptError(f"{left} scripted step(s) were never used; the next one answers {what}")
