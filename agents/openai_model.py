"""`OpenAIChatModel`: any OpenAI-compatible chat endpoint (OpenAI, Azure, Ollama, vLLM, llama.cpp).

The openai SDK does the HTTP, the retries with backoff on 429 and 5xx, and the timeouts; this
class maps its answers onto `Reply` and its failures onto `ModelError`s that say what to do.
The API key never appears in an error: servers that echo the credential they were sent are
scrubbed.
"""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from agents.chat import Message, ModelError, Reply, ToolCall, ToolSchema, Usage

OPENAI_URL = "https://api.openai.com/v1"
DETAIL_CHARS = 300


class OpenAIChatModel:
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, max_retries: int = 3, temperature: float | None = None,
                 http_client: httpx2.AsyncClient | None = None) -> None:  # fmt: skip
        self.name = model
        self.base_url = base_url or OPENAI_URL
        self._key = api_key or ""
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._temperature = temperature
        # Local servers (Ollama, vLLM, llama.cpp) take no key, but the SDK insists on one.
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key or "not-needed",
                                          timeout=timeout_s, max_retries=max_retries,
                                          http_client=http_client)  # fmt: skip

    async def complete(self, messages: list[Message], tools: list[ToolSchema]) -> Reply:
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = [tool.openai() for tool in tools]
        if self._temperature is not None:
            extra["temperature"] = self._temperature
        try:
            response = await self._client.chat.completions.create(model=self.name, messages=messages, **extra)  # type: ignore[arg-type]
        except openai.OpenAIError as exc:
            raise self._explain(exc) from None
        except ValueError as exc:  # a 200 whose body is not JSON (json.JSONDecodeError)
            raise ModelError(f"{self.base_url} sent an answer that is not JSON: {self._scrub(str(exc))[:DETAIL_CHARS]}",
                             retryable=True) from None  # fmt: skip
        if not isinstance(getattr(response, "choices", None), list):
            raise ModelError(f"{self.base_url} sent an answer that is not a chat completion", retryable=True)
        if not response.choices:
            raise ModelError(f"{self.base_url} answered with no choices for model {self.name}", retryable=True)
        message = response.choices[0].message
        calls = [
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")
            for call in message.tool_calls or []
            if call.type == "function"
        ]
        usage = response.usage
        return Reply(
            content=message.content,
            tool_calls=calls,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0, output_tokens=usage.completion_tokens if usage else 0
            ),
            model=response.model or self.name,
        )

    async def close(self) -> None:
        await self._client.close()

    def _explain(self, exc: openai.OpenAIError) -> ModelError:
        where = f"the model server at {self.base_url}"
        attempts = self._max_retries + 1
        tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(exc, openai.APITimeoutError):
            return ModelError(f"{where} did not answer within {self._timeout_s:g}s {tries}; raise "
                              "SHIPWAY_MODEL_TIMEOUT_S or check the server's load", retryable=True)  # fmt: skip
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(f"cannot reach {where} ({tries}); is it running, and is SHIPWAY_MODEL_BASE_URL right?",
                              retryable=True)  # fmt: skip
        if isinstance(exc, openai.RateLimitError):
            return ModelError(f"{where} is rate limiting (HTTP 429) {tries}: {self._detail(exc)}; wait, then "
                              "`shipway task continue`", retryable=True)  # fmt: skip
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ModelError(f"{where} refused the credentials (HTTP {exc.status_code}); check "
                              "SHIPWAY_MODEL_API_KEY", retryable=False)  # fmt: skip
        if isinstance(exc, openai.NotFoundError):
            return ModelError(f"{where} has no model {self.name!r} (HTTP 404); check SHIPWAY_MODEL", retryable=False)
        if isinstance(exc, openai.APIStatusError):
            retry = exc.status_code >= 500
            return ModelError(f"{where} answered HTTP {exc.status_code}: {self._detail(exc)}", retryable=retry)
        return ModelError(f"{where} sent an answer that could not be read: {self._scrub(str(exc))[:DETAIL_CHARS]}",
                          retryable=True)  # fmt: skip

    def _detail(self, exc: openai.APIStatusError) -> str:
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else None
        return self._scrub(str(message or exc.message))[:DETAIL_CHARS]

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if len(self._key) >= 4 else text
