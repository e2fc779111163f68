"""OpenAIChatModel against a real HTTP server that answers like an OpenAI-compatible chat endpoint."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest

from agents.chat import ModelError, Reply, ToolSchema
from agents.openai_model import OpenAIChatModel
from tests.helpers.fake_chat import (
    Answer,
    FakeChat,
    completion,
    delayed,
    fake_chat_server,
    garbled,
    rate_limited,
    status,
    tool_call,
)

pytestmark = pytest.mark.anyio

KEY = "sk-test-SECRET-0123456789abcdef"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a careful engineer."},
    {"role": "user", "content": "Add a --shout flag"},
]
READ_FILE = ToolSchema(
    name="read_file",
    description="Read lines of a file",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
SEARCH = ToolSchema(
    name="search_repo",
    description="Search the repository",
    parameters={"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}},
)


@pytest.fixture
def server() -> Iterator[FakeChat]:
    with fake_chat_server() as state:
        yield state


@pytest.fixture
async def model(server: FakeChat) -> AsyncIterator[OpenAIChatModel]:
    chat = OpenAIChatModel("gpt-test", base_url=server.base_url, api_key=KEY, timeout_s=5, max_retries=0)
    yield chat
    await chat.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def failure(model: OpenAIChatModel, tools: list[ToolSchema] | None = None) -> ModelError:
    with pytest.raises(ModelError) as caught:
        await model.complete(MESSAGES, tools or [])
    return caught.value


async def test_a_text_reply_carries_its_usage_and_model(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(completion("Here is the plan.", prompt_tokens=120, completion_tokens=34, model="gpt-test-2025"))
    reply = await model.complete(MESSAGES, [])
    assert reply == Reply(content="Here is the plan.", usage={"input_tokens": 120, "output_tokens": 34},
                          model="gpt-test-2025")  # fmt: skip
    assert reply.usage.total == 154
    assert reply.message() == {"role": "assistant", "content": "Here is the plan."}

    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "gpt-test"
    assert request["body"]["messages"] == MESSAGES


async def test_tool_calls_are_parsed_and_the_tools_are_sent_in_function_format(
    server: FakeChat, model: OpenAIChatModel
) -> None:
    raw = '{"path": "hello/cli.py"}'
    server.plan(
        completion(
            "Reading two things.",
            [tool_call("read_file", raw, "call_a"), tool_call("search_repo", {"query": "greet", "k": 3}, "call_b")],
        )
    )
    reply = await model.complete(MESSAGES, [READ_FILE, SEARCH])

    assert reply.content == "Reading two things."
    assert [(c.id, c.name) for c in reply.tool_calls] == [("call_a", "read_file"), ("call_b", "search_repo")]
    assert reply.tool_calls[0].arguments == raw, "the arguments stay the JSON text the model wrote"
    assert json.loads(reply.tool_calls[1].arguments) == {"query": "greet", "k": 3}
    assert reply.message()["tool_calls"][0] == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "read_file", "arguments": raw},
    }

    body = server.requests[0]["body"]
    assert body["messages"] == MESSAGES
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read lines of a file",
                "parameters": READ_FILE.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "search_repo",
                "description": "Search the repository",
                "parameters": SEARCH.parameters,
            },
        },
    ]


async def test_a_conversation_with_tool_results_is_sent_as_given(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(completion("done"))
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call("read_file", '{"path": "a.py"}', "call_1")],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"text": "print(1)"}'},
    ]
    await model.complete(messages, [READ_FILE])
    assert server.requests[0]["body"]["messages"] == messages


async def test_no_tools_key_is_sent_when_the_tool_list_is_empty(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(completion("plain"))
    await model.complete(MESSAGES, [])
    assert "tools" not in server.requests[0]["body"]
    assert "temperature" not in server.requests[0]["body"]


async def test_the_temperature_is_sent_when_set(server: FakeChat) -> None:
    server.plan(completion("warm"))
    chat = OpenAIChatModel("gpt-test", base_url=server.base_url, api_key=KEY, temperature=0.25, max_retries=0)
    try:
        await chat.complete(MESSAGES, [])
    finally:
        await chat.close()
    assert server.requests[0]["body"]["temperature"] == 0.25


async def test_a_local_server_without_a_key_gets_a_placeholder(server: FakeChat) -> None:
    server.plan(completion("local"))
    chat = OpenAIChatModel("llama3", base_url=server.base_url, max_retries=0)
    try:
        reply = await chat.complete(MESSAGES, [])
    finally:
        await chat.close()
    assert reply.content == "local" and reply.model == "llama3"
    assert server.requests[0]["headers"]["authorization"] == "Bearer not-needed"


async def test_a_rate_limit_is_retried_transparently(server: FakeChat) -> None:
    server.plan(rate_limited(), rate_limited(), completion("after the wait"))
    chat = OpenAIChatModel("gpt-test", base_url=server.base_url, api_key=KEY, max_retries=2)
    started = time.monotonic()
    try:
        reply = await chat.complete(MESSAGES, [])
    finally:
        await chat.close()
    assert reply.content == "after the wait"
    assert len(server.requests) == 3
    assert all(r["body"]["messages"] == MESSAGES for r in server.requests)
    assert time.monotonic() - started < 2, "the retries honour the server's short Retry-After"


async def test_a_rate_limit_beyond_the_retries_is_a_retryable_error(server: FakeChat) -> None:
    server.plan(rate_limited("Rate limit reached for gpt-test"), rate_limited("Rate limit reached for gpt-test"))
    chat = OpenAIChatModel("gpt-test", base_url=server.base_url, api_key=KEY, max_retries=1)
    try:
        error = await failure(chat)
    finally:
        await chat.close()
    assert len(server.requests) == 2
    assert error.retryable
    assert "429" in str(error) and "shipway task continue" in str(error)
    assert "after 2 attempts" in str(error)
    assert "Rate limit reached for gpt-test" in str(error), "the server's own reason is passed on"


async def test_a_timeout_is_a_retryable_error_naming_the_setting(server: FakeChat) -> None:
    server.plan(delayed(2.0, completion("too late")))
    chat = OpenAIChatModel("gpt-test", base_url=server.base_url, api_key=KEY, timeout_s=0.5, max_retries=0)
    started = time.monotonic()
    try:
        error = await failure(chat)
    finally:
        await chat.close()
    assert time.monotonic() - started < 1.8, "the client gave up at its timeout, not when the server answered"
    assert error.retryable
    assert "SHIPWAY_MODEL_TIMEOUT_S" in str(error) and "0.5s" in str(error)


async def test_rejected_credentials_are_not_retryable_and_the_key_is_never_shown(
    server: FakeChat, model: OpenAIChatModel
) -> None:
    server.plan(status(401))
    error = await failure(model)
    echoed = json.dumps(server.requests[0]["headers"]["authorization"])
    assert KEY in echoed, "the fake received the key (and echoed it in its error body)"
    assert not error.retryable
    assert "SHIPWAY_MODEL_API_KEY" in str(error) and "401" in str(error)
    assert KEY not in str(error) and KEY not in repr(error) and all(KEY not in str(a) for a in error.args)
    assert KEY[:12] not in str(error)


async def test_a_forbidden_answer_also_points_at_the_key(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(status(403, f"key {KEY} may not use this model"))
    error = await failure(model)
    assert not error.retryable and "SHIPWAY_MODEL_API_KEY" in str(error) and "403" in str(error)
    assert KEY not in str(error)


async def test_an_echoed_key_in_another_error_is_scrubbed(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(Answer(status=400, echo_authorization=True))
    error = await failure(model)
    assert not error.retryable and "HTTP 400" in str(error)
    assert "Incorrect API key provided: Bearer ***" in str(error)
    assert KEY not in str(error)


async def test_an_unknown_model_names_the_setting(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(status(404, "The model `gpt-test` does not exist"))
    error = await failure(model)
    assert not error.retryable
    assert "SHIPWAY_MODEL" in str(error) and "'gpt-test'" in str(error) and "404" in str(error)


async def test_a_server_error_is_retried_then_retryable(server: FakeChat) -> None:
    # retry-after-ms makes the SDK retry at once instead of after its 0.5 s backoff.
    fast = {"retry-after-ms": "1"}
    server.plan(status(500, "upstream exploded", fast), status(503, "overloaded", fast))
    chat = OpenAIChatModel("gpt-test", base_url=server.base_url, api_key=KEY, max_retries=1)
    try:
        error = await failure(chat)
    finally:
        await chat.close()
    assert len(server.requests) == 2
    assert error.retryable and "HTTP 503" in str(error) and "overloaded" in str(error)


async def test_a_bad_request_is_not_retryable_and_passes_on_the_reason(
    server: FakeChat, model: OpenAIChatModel
) -> None:
    server.plan(status(400, "Invalid schema for function 'read_file'"))
    error = await failure(model, [READ_FILE])
    assert len(server.requests) == 1
    assert not error.retryable and "HTTP 400" in str(error) and "Invalid schema for function 'read_file'" in str(error)


async def test_a_long_error_detail_is_cut(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(status(400, "x" * 5_000))
    error = await failure(model)
    assert "x" * 250 in str(error) and "x" * 301 not in str(error)


async def test_an_unreachable_server_is_retryable() -> None:
    chat = OpenAIChatModel("gpt-test", base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=KEY, max_retries=0)
    try:
        error = await failure(chat)
    finally:
        await chat.close()
    assert error.retryable
    assert "cannot reach" in str(error) and "SHIPWAY_MODEL_BASE_URL" in str(error)
    assert KEY not in str(error)


async def test_an_answer_without_choices_is_a_retryable_error(server: FakeChat, model: OpenAIChatModel) -> None:
    server.plan(Answer(body={"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-test", "choices": []}))
    error = await failure(model)
    assert error.retryable and "no choices" in str(error)


@pytest.mark.parametrize("payload", [b'{"id": "chatcmpl-fake", "choices": [{"index": 0, "mess', b"[]", b"<html>oops"])
async def test_a_garbled_body_is_a_model_error(server: FakeChat, model: OpenAIChatModel, payload: bytes) -> None:
    server.plan(garbled(payload))
    error = await failure(model)
    assert error.retryable and ("is not JSON" in str(error) or "not a chat completion" in str(error)), error


async def test_a_model_on_an_httpx2_mock_transport() -> None:
    if not hasattr(httpx2, "MockTransport"):
        pytest.skip("this httpx2 has no MockTransport")
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        body = json.loads(request.content)
        if body["model"] == "missing-model":
            return httpx2.Response(404, json={"error": {"message": "no such model"}})
        answer = completion(None, [tool_call("read_file", '{"path": "README.md"}', "call_m")], prompt_tokens=5)
        assert isinstance(answer.body, dict)
        return httpx2.Response(200, json={**answer.body, "model": body["model"]})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        chat = OpenAIChatModel("gpt-mock", base_url="http://models.invalid/v1", api_key=KEY, http_client=http,
                               max_retries=0)  # fmt: skip
        reply = await chat.complete(MESSAGES, [READ_FILE])
        missing = OpenAIChatModel("missing-model", base_url="http://models.invalid/v1", http_client=http,
                                  max_retries=0)  # fmt: skip
        error = await failure(missing)
        await chat.close()
        await missing.close()

    assert reply.content is None and reply.model == "gpt-mock" and reply.usage.input_tokens == 5
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [("call_m", "read_file", '{"path": "README.md"}')]
    assert str(seen[0].url) == "http://models.invalid/v1/chat/completions"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(seen[0].content)["tools"] == [READ_FILE.openai()]
    assert not error.retryable and "SHIPWAY_MODEL" in str(error)
