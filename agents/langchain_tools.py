"""Shipway's tools as LangChain tools, for people who build their own LangChain agents on them.

`langchain-mcp-adapters` would do this, but it pins mcp<2; this adapter is a few lines over
`Toolbox`, so bound arguments (the task id) and the result formatting stay the same as for
Shipway's own agents. A tool error becomes a `ToolException`, which LangChain hands back to the
model as the tool's answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from langchain_core.tools import StructuredTool, ToolException

from agents.toolbox import Toolbox


async def _call(toolbox: Toolbox, name: str, **arguments: Any) -> str:
    outcome = await toolbox.call(name, arguments)
    if not outcome.ok:
        raise ToolException(outcome.text)
    return outcome.text


def langchain_tools(toolbox: Toolbox, names: Iterable[str] | None = None) -> list[StructuredTool]:
    return [
        StructuredTool(
            name=schema.name,
            description=schema.description,
            args_schema=schema.parameters,
            coroutine=functools.partial(_call, toolbox, schema.name),
            handle_tool_error=True,
        )
        for schema in toolbox.schemas(names)
    ]
