"""The `ChatModel` port: one chat completion that may call tools, in the OpenAI message format.

The OpenAI chat format is what every OpenAI-compatible server speaks (OpenAI, Azure, Ollama,
vLLM, llama.cpp), so messages stay plain dicts in that shape and transcripts can be saved and
replayed as JSON without conversion.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

Message = dict[str, Any]
"""One chat message: {"role": "system"|"user"|"assistant"|"tool", "content": ..., ...}."""


class ToolSchema(BaseModel):
    """A tool as a model sees it: its name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: str = Field(description="The arguments as the model wrote them: JSON text, not yet trusted")


class Usage(BaseModel):
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


class Reply(BaseModel):
    """What the model answered: text, tool calls, or both, and what it cost."""

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""

    def message(self) -> Message:
        """The assistant message to append to the conversation."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


class ModelError(Exception):
    """The model endpoint failed. The message says what to do and never holds a credential.

    `retryable` errors (rate limits, timeouts, an unreachable server) leave the task where it
    is, to be resumed with `shipway task continue`; the others need a configuration change.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ChatModel(Protocol):
    name: str
    """The model's name as prices and events know it."""

    async def complete(self, messages: list[Message], tools: list[ToolSchema]) -> Reply:
        """One completion; raises ModelError when the endpoint fails."""
        ...
