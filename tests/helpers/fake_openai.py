"""A real HTTP server on 127.0.0.1 that answers like an OpenAI-compatible `/v1/embeddings` endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def fake_vector(text: str) -> list[float]:
    """What the fake embeds `text` to: deliberately not unit length, and distinct per text length."""
    return [float(len(text)), 3.0, 4.0]


@dataclass
class FakeOpenAI:
    base_url: str
    # What the server answers: "ok", "garbled" (200 with a body that is not JSON) or an HTTP status code.
    mode: str | int = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if state.mode == "garbled":
                self._answer(200, b'{"data": [{"index": 0, "embedd')
            elif isinstance(state.mode, int):
                # Like some real servers, the error echoes the credentials it was sent.
                echo = f"Incorrect API key provided: {self.headers.get('Authorization', '')}"
                self._answer(state.mode, json.dumps({"error": {"message": echo}}).encode())
            else:
                data = [
                    {"object": "embedding", "index": i, "embedding": fake_vector(t)}
                    for i, t in enumerate(body["input"])
                ]
                # Reversed: clients must order by "index", not by position.
                answer = {"object": "list", "model": body["model"], "data": data[::-1]}
                self._answer(200, json.dumps(answer).encode())

        def _answer(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """Serve on an ephemeral port in a thread; yields its state, whose base_url ends in /v1."""
    state = FakeOpenAI(base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
