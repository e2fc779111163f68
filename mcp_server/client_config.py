"""Ready-to-paste MCP client configuration for Warp, VS Code, Cursor and Claude Code.

Tokens are never printed: snippets refer to `${SHIPWAY_HTTP_TOKEN}` (or say where it goes).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path


def stdio_command(shipway_bin: Path, repo: Path) -> list[str]:
    return [str(shipway_bin), "serve", "--stdio", "--repo", str(repo)]


def _dump(value: object) -> str:
    return json.dumps(value, indent=2)


def client_snippets(shipway_bin: Path, repo: Path, url: str | None, token_required: bool) -> str:
    """Human-readable text with one stdio and (given `url`) one HTTP snippet per client."""
    command, *args = stdio_command(shipway_bin, repo)
    stdio_entry = {"command": command, "args": args}

    def http_entry(token_placeholder: str) -> dict[str, object]:
        headers = {"headers": {"Authorization": f"Bearer {token_placeholder}"}} if token_required else {}
        return {"url": url, **headers}

    # VS Code and Cursor expand ${env:NAME} in their mcp.json; Warp takes the literal value.
    editor_http = http_entry("${env:SHIPWAY_HTTP_TOKEN}")
    claude_header = ' --header "Authorization: Bearer $SHIPWAY_HTTP_TOKEN"' if token_required else ""

    sections = [
        ("Claude Code (stdio)", f"claude mcp add shipway -- {shlex.join([command, *args])}"),
        (
            "VS Code, .vscode/mcp.json (stdio)",
            _dump({"servers": {"shipway": {"type": "stdio", **stdio_entry}}}),
        ),
        ("Cursor, .cursor/mcp.json (stdio)", _dump({"mcpServers": {"shipway": stdio_entry}})),
        (
            "Warp, Settings > MCP Servers > + Add (stdio)",
            _dump({"shipway": {**stdio_entry, "working_directory": str(repo)}}),
        ),
    ]
    if url:
        sections += [
            ("Claude Code (HTTP)", f"claude mcp add --transport http shipway {url}{claude_header}"),
            (
                "VS Code, .vscode/mcp.json (HTTP)",
                _dump({"servers": {"shipway": {"type": "http", **editor_http}}}),
            ),
            ("Cursor, .cursor/mcp.json (HTTP)", _dump({"mcpServers": {"shipway": editor_http}})),
            (
                "Warp, Settings > MCP Servers > + Add (HTTP)",
                _dump({"shipway": http_entry("<SHIPWAY_HTTP_TOKEN>")}),
            ),
        ]
    return "\n\n".join(f"# {title}\n{body}" for title, body in sections)
