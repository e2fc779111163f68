"""Running the server: stdio for editors that launch it, HTTP for everything else.

On stdio, stdout carries the protocol, so everything human goes to stderr. Over HTTP the
banner (URLs and client snippets) goes to stdout once the socket is listening.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import anyio

from mcp_server.app import ServerDeps, open_deps
from mcp_server.client_config import client_snippets
from mcp_server.config import Settings
from mcp_server.http_app import MCP_PATH, REVIEW_PATH, bind_socket, build_http_app, serve_http
from mcp_server.reviewers import ReviewerStore
from mcp_server.server import create_server

log = logging.getLogger(__name__)


def _configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The SDK and uvicorn announce every start-up step at INFO; keep them for DEBUG runs.
    if level != "DEBUG":
        for noisy in ("mcp", "uvicorn"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def index_in_background(deps: ServerDeps) -> threading.Thread:
    """Build or refresh the search index (vectors included) without delaying the first request.

    Queries that arrive before it finishes index lexically on their own and note that the
    semantic index is not ready.
    """

    def build() -> None:
        try:
            report = deps.search.build(semantic=True)
            log.info("search index at %s: %s files, semantic %s", report.commit[:12], report.files, report.semantic)
        except Exception:  # a broken index must not take the server down; searches report it
            log.exception("background indexing failed")

    thread = threading.Thread(target=build, name="shipway-indexer", daemon=True)
    thread.start()
    return thread


def serve_stdio(settings: Settings) -> None:
    _configure_logging(settings.log_level)
    deps = open_deps(settings)
    index_in_background(deps)
    server = create_server(deps)
    anyio.run(server.run_stdio_async)


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


def banner(settings: Settings, port: int) -> str:
    root = base_url(settings.host, port)
    token_note = (
        "\nAuth:       every MCP request needs  Authorization: Bearer $SHIPWAY_HTTP_TOKEN"
        if settings.http_token is not None
        else ""
    )
    reviewers = ReviewerStore(settings.state_path).all()
    review_note = (
        f"  (log in with a reviewer token; {len(reviewers)} reviewer(s))"
        if reviewers
        else "  (no reviewers yet: `shipway reviewer add YOUR_NAME` prints a login token)"
    )
    snippets = client_snippets(
        Path(sys.executable).parent / "shipway",
        settings.repo,
        f"{root}{MCP_PATH}",
        token_required=settings.http_token is not None,
    )
    return (
        f"Shipway serving {settings.repo} (toolset: {settings.toolset})\n"
        f"MCP URL:    {root}{MCP_PATH}\n"
        f"Review:     {root}{REVIEW_PATH}{review_note}{token_note}\n\n"
        f"Connect a client (paste one of these):\n\n{snippets}\n\n"
        "Press Ctrl+C to stop."
    )


def serve_http_forever(settings: Settings) -> None:
    _configure_logging(settings.log_level)
    deps = open_deps(settings)
    sock = bind_socket(settings.host, settings.port)  # a busy port fails before any work starts
    index_in_background(deps)
    app = build_http_app(create_server(deps), deps)
    port = sock.getsockname()[1]

    def announce() -> None:
        print(banner(settings, port), flush=True)

    serve_http(app, sock, "DEBUG" if settings.log_level == "DEBUG" else "WARNING", announce)
