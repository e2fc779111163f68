"""A real HTTP server on 127.0.0.1 that answers like an OpenAI-compatible `/v1/chat/completions` endpoint.

It answers from a queue of planned answers, one per request, in order:

- `completion(...)`: a normal chat completion (text and/or tool calls in OpenAI's wire format, with usage);
- `status(code, ...)`: an HTTP error; a 401 echoes the Authorization header it received, as some real servers do;
- `rate_limited()`: a 429 with `Retry-After: 0` (and `retry-after-ms`, which the openai SDK prefers, so that
  its retry waits a millisecond instead of its 0.5 s default backoff);
- `garbled()`: a 200 whose body is not JSON;
- `delayed(seconds, answer)`: the answer, sent only after a delay (longer than a client's timeout, say).

A request with no planned answer left gets a 500 that tells the client not to retry. Every request is
recorded (path, headers with lower-case names, JSON body) in `FakeChat.requests`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    # A dict is sent as JSON; bytes are sent as they are (for garbled bodies).
    body: dict[str, Any] | bytes = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    echo_authorization: bool = False


def tool_call(name: str, arguments: str | dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    """One tool call in OpenAI's wire format; `arguments` as JSON text (a dict is dumped)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw}}


def completion(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    *,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    model: str | None = None,
) -> Answer:
    """A chat completion; `model` defaults to the model the request named."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop", "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Answer(body=body)


def status(code: int, message: str = "", headers: dict[str, str] | None = None) -> Answer:
    """An HTTP error in OpenAI's error shape; a 401 echoes the Authorization header it was sent."""
    error = {"message": message or f"fake error {code}", "type": "fake_error", "code": None, "param": None}
    return Answer(status=code, body={"error": error}, headers=dict(headers or {}), echo_authorization=code == 401)


def rate_limited(message: str = "Rate limit reached for requests") -> Answer:
    return status(429, message, headers={"Retry-After": "0", "retry-after-ms": "1"})


def garbled(payload: bytes = b'{"id": "chatcmpl-fake", "choices": [{"index": 0, "mess') -> Answer:
    return Answer(status=200, body=payload)


def delayed(seconds: float, answer: Answer | None = None) -> Answer:
    answer = answer or completion("late")
    answer.delay_s = seconds
    return answer


@dataclass
class FakeChat:
    base_url: str
    answers: deque[Answer] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def plan(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def answer_for(self, path: str, body: Any, authorization: str) -> Answer | None:
        """What to send for one recorded request; None when the server stops during a planned delay."""
        if path.rstrip("/") != "/v1/chat/completions":
            return Answer(status=404, body={"error": {"message": f"no route {path}"}})
        if not self.answers:
            missing = f"fake_chat: no answer planned for request #{len(self.requests)}"
            return Answer(status=500, body={"error": {"message": missing}}, headers={"x-should-retry": "false"})
        answer = self.answers.popleft()
        if answer.delay_s and self.stopping.wait(answer.delay_s):
            return None
        if answer.echo_authorization:
            echo = {"message": f"Incorrect API key provided: {authorization}", "type": "invalid_request_error"}
            return Answer(status=answer.status, body={"error": echo}, headers=answer.headers)
        if isinstance(answer.body, dict) and answer.status == 200 and answer.body.get("model", "") is None:
            requested = body.get("model", "") if isinstance(body, dict) else ""
            return Answer(status=200, body={**answer.body, "model": requested}, headers=answer.headers)
        return answer


def _handler(state: FakeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            headers = {name.lower(): value for name, value in self.headers.items()}
            state.requests.append({"path": self.path, "headers": headers, "body": body})
            answer = state.answer_for(self.path, body, headers.get("authorization", ""))
            if answer is not None:
                self._send(answer)

        def _send(self, answer: Answer) -> None:
            payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@contextmanager
def fake_chat_server() -> Iterator[FakeChat]:
    """Serve on an ephemeral port in a thread; yields its state, whose base_url ends in /v1."""
    state = FakeChat(base_url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    # A short poll interval lets shutdown() return at once instead of after up to 0.5 s.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
