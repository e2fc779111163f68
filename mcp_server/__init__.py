"""Shipway's MCP server, task workflow, store, review page and `shipway` CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("shipway")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
