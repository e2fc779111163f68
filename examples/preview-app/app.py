"""A small ASGI app for Shipway's preview examples: a greeting page and a health check.

Standard library only, so `shipway preview start` can serve it with uvicorn as it is, and
`build.py` can render the same page as a static site for the S3 target.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

GREETING_FILE = Path(__file__).with_name("greeting.txt")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def greeting() -> str:
    return GREETING_FILE.read_text(encoding="utf-8").strip()


def page() -> str:
    text = html.escape(greeting())
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Preview app</title>'
        '<link rel="stylesheet" href="style.css"></head>\n'
        f'<body><h1 id="greeting">{text}</h1><p>Served by the preview app.</p></body></html>\n'
    )


STYLE = "body { font-family: sans-serif; margin: 3rem; }\nh1 { color: #1b5e20; }\n"


async def _respond(send: Send, status: int, body: str, kind: str) -> None:
    data = body.encode()
    headers = [(b"content-type", kind.encode()), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    routes = {
        "/": (page, "text/html; charset=utf-8"),
        "/style.css": (lambda: STYLE, "text/css"),
        "/health": (lambda: "ok\n", "text/plain"),
    }
    found = routes.get(scope["path"])
    if found is None:
        await _respond(send, 404, "not found\n", "text/plain")
    else:
        render, kind = found
        await _respond(send, 200, render(), kind)
