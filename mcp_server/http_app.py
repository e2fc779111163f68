"""Streamable HTTP serving: the MCP endpoint, a health check, the review site, and the token gate.

The bearer-token check is a 30-line ASGI middleware written here on purpose: the SDK's auth
support is an OAuth resource server (it publishes authorization-server metadata and expects an
issuer), which would be misleading for a single static token.
"""

from __future__ import annotations

import hmac
import json
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server import __version__
from mcp_server.app import ServerDeps
from mcp_server.errors import ConfigError
from mcp_server.review_web import mount_review_site

MCP_PATH = "/mcp"
REVIEW_PATH = "/review"
HEALTH_PATH = "/healthz"


class BearerTokenMiddleware:
    """Refuse every HTTP request without `Authorization: Bearer <token>`, except open paths."""

    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str] = frozenset({HEALTH_PATH}),
                 open_prefixes: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.app = app
        self.expected = b"Bearer " + token.encode()
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    def _open(self, path: str) -> bool:
        return path in self.open_paths or any(path == p or path.startswith(p + "/") for p in self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        provided = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if hmac.compare_digest(provided, self.expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized", "hint": "send Authorization: Bearer $SHIPWAY_HTTP_TOKEN"})
        response = Response(
            body, status_code=401, media_type="application/json", headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)


def build_http_app(server: MCPServer, deps: ServerDeps) -> ASGIApp:
    """The ASGI app for `shipway serve --http`."""

    @server.custom_route(HEALTH_PATH, methods=["GET"])  # type: ignore[untyped-decorator]
    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    mount_review_site(server, deps)
    settings = deps.settings
    app: ASGIApp = server.streamable_http_app(streamable_http_path=MCP_PATH, host=settings.host)
    if settings.http_token is not None:
        # The review site has its own login (reviewer tokens): a browser cannot send the API token.
        app = BearerTokenMiddleware(app, settings.http_token.get_secret_value(), open_prefixes=(REVIEW_PATH,))
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port (PORT= for make run)"
        ) from exc
    return sock


class _ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


def serve_http(app: ASGIApp, sock: socket.socket, log_level: str, on_ready: Callable[[], None]) -> None:
    """Serve `app` on an already bound socket until SIGINT/SIGTERM; `on_ready` runs once listening."""
    config: Any = uvicorn.Config(app, log_level=log_level.lower(), access_log=False, lifespan="on")
    _ReadyServer(config, on_ready).run(sockets=[sock])
