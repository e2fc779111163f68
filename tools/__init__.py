"""One plain, typed function per engineering capability (search, edit, tests, preview, forge).

Tools know no protocol, no gate and no model; `mcp_server` exposes them over MCP and the CLI.
"""
