"""Shipway's MCP tools as an agent uses them, through an MCP client session (mcp 2.x `Client`).

The session can be in-process (`Client(server)`, what `shipway worker` uses) or streamable HTTP
(`Client(url)`, a remote worker): either way every call goes through the server's tools and
gates, exactly as an editor's agent would. A `Toolbox` offers one role's subset of the tools
and binds arguments the model must not choose, such as the task id: the model never sees
`task_id` in a schema, and a value it sends anyway is replaced by the bound one.

Results go to the model as compact JSON, cut at `MAX_RESULT_CHARS` with a marker that says
how to get the rest; errors go back as the tool's own message, so the model can correct itself.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from mcp_types import Tool as MCPTool
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from agents.chat import ToolSchema

tracer = trace.get_tracer("shipway.agents")

MAX_RESULT_CHARS = 12_000


class ToolFailed(Exception):
    """A tool the driver itself called answered with an error."""


class ToolOutcome(BaseModel):
    name: str
    ok: bool
    text: str
    data: dict[str, Any] | None = None


def _without(schema: dict[str, Any], bound: Iterable[str]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    for name in bound:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"] = [r for r in schema["required"] if r != name]
    return schema


def _text_of(result: CallToolResult) -> str:
    return "\n".join(part.text for part in result.content if isinstance(part, TextContent))


def clip(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n…[cut: {len(text) - limit:,} more characters; ask for less, e.g. a narrower range]"


class Toolbox:
    def __init__(self, client: Client, tools: list[MCPTool], bound: dict[str, Any]) -> None:
        self.client = client
        self.bound = dict(bound)
        self._tools = {tool.name: tool for tool in tools}

    @classmethod
    async def open(cls, client: Client, names: Iterable[str], bound: dict[str, Any]) -> Toolbox:
        served = {tool.name: tool for tool in (await client.list_tools()).tools}
        wanted = list(names)
        missing = [name for name in wanted if name not in served]
        if missing:
            raise ToolFailed(f"the server does not serve {', '.join(missing)}; agents need the 'agent' toolset")
        return cls(client, [served[name] for name in wanted], bound)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self, names: Iterable[str] | None = None) -> list[ToolSchema]:
        chosen = self._tools if names is None else {n: self._tools[n] for n in names if n in self._tools}
        return [
            ToolSchema(
                name=tool.name,
                description=tool.description or tool.name,
                parameters=_without(tool.input_schema, self.bound),
            )
            for tool in chosen.values()
        ]

    async def call_json(self, name: str, raw_arguments: str) -> ToolOutcome:
        """Call a tool with arguments as a model wrote them (JSON text)."""
        try:
            arguments = json.loads(raw_arguments or "{}")
        except json.JSONDecodeError as exc:
            return ToolOutcome(name=name, ok=False, text=f"the arguments are not valid JSON ({exc}); send an object")
        if not isinstance(arguments, dict):
            return ToolOutcome(name=name, ok=False, text="the arguments must be a JSON object")
        return await self.call(name, arguments)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        if name not in self._tools:
            offered = ", ".join(self._tools)
            return ToolOutcome(name=name, ok=False, text=f"there is no tool {name!r} here; the tools are: {offered}")
        tool = self._tools[name]
        accepted = set(tool.input_schema.get("properties", {}))
        arguments = {**arguments, **{k: v for k, v in self.bound.items() if k in accepted}}
        with tracer.start_as_current_span(f"execute_tool {name}") as span:
            span.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name})
            try:
                result = await self.client.call_tool(name, arguments)
            except MCPError as exc:
                span.set_status(StatusCode.ERROR, "MCPError")
                return ToolOutcome(name=name, ok=False, text=f"{name} failed: {exc}")
            if result.is_error:
                span.set_status(StatusCode.ERROR, "tool error")
        if result.is_error:
            return ToolOutcome(name=name, ok=False, text=clip(_text_of(result) or f"{name} failed"))
        data = result.structured_content
        text = json.dumps(data, separators=(",", ":"), default=str) if data is not None else _text_of(result)
        return ToolOutcome(name=name, ok=True, text=clip(text), data=data)

    async def data(self, name: str, **arguments: Any) -> dict[str, Any]:
        """For the driver's own calls: the structured result, or ToolFailed with the tool's message."""
        outcome = await self.call(name, arguments)
        if not outcome.ok or outcome.data is None:
            raise ToolFailed(outcome.text)
        return outcome.data
