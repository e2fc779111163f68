"""Baseline for the MCP benchmarks: a bare mcp-SDK MCPServer with one trivial tool.

    python bench/bare_server.py --stdio
    python bench/bare_server.py --http      (prints "MCP URL: http://127.0.0.1:PORT/mcp")

Same SDK, same transports, no store and no validation: the floor Shipway's numbers are
compared against.
"""

from __future__ import annotations

import socket
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from mcp_server.http_app import serve_http


class Pong(BaseModel):
    message: str


def build() -> MCPServer:
    server = MCPServer("bare", log_level="WARNING")

    def ping(message: str = "ping") -> Pong:
        """Answer at once."""
        return Pong(message=message)

    server.add_tool(ping)
    return server


def main() -> None:
    server = build()
    if "--http" in sys.argv:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = server.streamable_http_app(host="127.0.0.1")
        serve_http(app, sock, "WARNING", lambda: print(f"MCP URL: http://127.0.0.1:{port}/mcp", flush=True))
    else:
        anyio.run(server.run_stdio_async)


if __name__ == "__main__":
    main()
