"""Latency of `tools/list` and `list_tasks` over stdio and HTTP, and the size of `tools/list`.

    .venv/bin/python bench/mcp_latency.py [--calls 300] [--tasks 200]

Baseline, measured in the same run: a bare mcp-SDK server (bench/bare_server.py) answering
`tools/list` and a trivial `ping` tool over the same transport. Ratios are Shipway / bare.
Token counts use the o200k_base encoding (bpe-openai, offline).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from bench._common import BARE, SHIPWAY, http_process, ms, percentile, seeded_repo


async def _timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    for _ in range(10):  # warm-up
        await call()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - start)
        if getattr(result, "is_error", False):
            raise RuntimeError(f"tool call failed: {result.content}")
    return samples


async def measure(
    target: Any, tool: str, args: dict[str, Any], calls: int, mode: str = "auto"
) -> dict[str, list[float]]:
    async with Client(target, mode=mode) as client:
        return {
            "tools/list": await _timed(lambda: client.list_tools(cache_mode="bypass"), calls),
            "call": await _timed(lambda: client.call_tool(tool, args), calls),
        }


def _stdio(cmd: list[str]) -> StdioServerParameters:
    return StdioServerParameters(command=cmd[0], args=cmd[1:], env={"PATH": os.environ["PATH"]})


def _row(label: str, ours: list[float], bare: list[float]) -> str:
    p50, p95, b50 = percentile(ours, 50), percentile(ours, 95), percentile(bare, 50)
    return f"  {label:<26} p50 {ms(p50)}  p95 {ms(p95)}   bare p50 {ms(b50)}   ratio {p50 / b50:5.2f}x"


async def tool_list_tokens(repo: str) -> tuple[int, int, int]:
    import bpe_openai

    encoding = bpe_openai.get_encoding("o200k_base")
    async with Client(_stdio([SHIPWAY, "serve", "--stdio", "--repo", repo])) as client:
        tools = (await client.list_tools()).tools
    wire = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    model_facing = [{k: t[k] for k in ("name", "description", "inputSchema") if k in t} for t in wire]

    def count(value: object) -> int:
        return len(encoding.encode(json.dumps(value, separators=(",", ":"))))

    return len(tools), count({"tools": wire}), count(model_facing)


async def main(calls: int, tasks: int) -> None:
    repo = str(seeded_repo(tasks))
    print(f"mcp_latency: {calls} calls each, store seeded with {tasks} tasks, repo {repo}")
    shipway_stdio = [SHIPWAY, "serve", "--stdio", "--repo", repo]
    list_args = {"limit": 20}
    # Over HTTP both client modes are measured: "legacy" (initialize handshake, a session) and
    # "auto", which picks the 2026-07-28 stateless protocol. The mcp 2.3 Python client adds
    # ~45 ms per request in the latter whatever the server (see docs/development.md).
    for transport, mode in (("stdio", "auto"), ("http", "legacy"), ("http", "auto")):
        if transport == "stdio":
            ours = await measure(_stdio(shipway_stdio), "list_tasks", list_args, calls, mode)
            bare = await measure(_stdio([*BARE, "--stdio"]), "ping", {}, calls, mode)
        else:
            with http_process([SHIPWAY, "serve", "--http", "--port", "0", "--repo", repo]) as url:
                ours = await measure(url, "list_tasks", list_args, calls, mode)
            with http_process([*BARE, "--http"]) as url:
                bare = await measure(url, "ping", {}, calls, mode)
        print(f"{transport} (client mode {mode}):")
        print(_row("tools/list", ours["tools/list"], bare["tools/list"]))
        print(_row("list_tasks(limit=20) vs ping", ours["call"], bare["call"]))
    count, wire, facing = await tool_list_tokens(repo)
    print(f"tools/list size: {count} tools, {wire} tokens as sent (with output schemas), "
          f"{facing} tokens model-facing (name + description + input schema); target <= 2000")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=200)
    options = parser.parse_args()
    anyio.run(main, options.calls, options.tasks)
