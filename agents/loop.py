"""The conversation loop every agent round runs: ask the model, run the tools it calls, repeat.

A round ends when the model answers without calling a tool, or when a call to one of its
`stop_on` tools succeeds (the planner's round ends with an accepted `propose_plan`). Each
completed step (one model call and the tools it called) goes to the `Journal` before the next
begins, so a crash loses at most the step in flight and `shipway task continue` picks up the
conversation where the journal left it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace
from pydantic import BaseModel, Field

from agents.budget import Budget, Prices, Spend, check, cost_of
from agents.chat import ChatModel, Message, ToolSchema, Usage
from agents.toolbox import Toolbox

tracer = trace.get_tracer("shipway.agents")


class CallSummary(BaseModel):
    name: str
    ok: bool


class StepRecord(BaseModel):
    """One completed step of a round, as the journal keeps it."""

    agent: str
    round: int
    step: int = Field(description="1-based, within the round")
    model: str
    usage: Usage
    cost_usd: float
    wall_s: float
    calls: list[CallSummary]
    messages: list[Message] = Field(description="What the step added to the conversation")


class RoundInfo(BaseModel):
    number: int
    agent: str
    reason: str
    outcome: str | None = Field(default=None, description="None while the round is unfinished")


class Journal(Protocol):
    """Where a task's agent work is recorded, so it can be audited, accounted and resumed."""

    def spend(self) -> Spend:
        """Everything the task's agents used so far."""
        ...

    def rounds(self, agent: str) -> list[RoundInfo]:
        """The rounds `agent` ran on this task, oldest first."""
        ...

    def conversation(self, round_no: int) -> list[Message]:
        """A round's opening messages followed by every completed step's messages."""
        ...

    def open_round(self, agent: str, reason: str, messages: list[Message]) -> int:
        """Start a round with its opening messages; returns the round number."""
        ...

    def step(self, record: StepRecord) -> None: ...

    def close_round(self, round_no: int, outcome: str) -> None: ...


@dataclass
class AgentContext:
    model: ChatModel
    toolbox: Toolbox
    journal: Journal
    budget: Budget
    prices: Prices


async def converse(ctx: AgentContext, agent: str, round_no: int, messages: list[Message], tools: list[ToolSchema],
                   stop_on: frozenset[str] = frozenset(), saved: int | None = None) -> str:  # fmt: skip
    """Run the round to its end; returns the model's closing text (empty when a stop_on tool ended it).

    `saved` is how many of `messages` the journal already holds (default: all); messages after
    it, such as the driver's reminder that the tests still fail, are journalled with the next step.
    """
    saved = len(messages) if saved is None else saved
    step = sum(1 for m in messages if m.get("role") == "assistant")
    while True:
        check(ctx.budget, ctx.journal.spend())
        step += 1
        started = time.monotonic()
        with tracer.start_as_current_span("chat " + ctx.model.name) as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": ctx.model.name,
                                 "shipway.agent": agent, "shipway.round": round_no, "shipway.step": step})  # fmt: skip
            reply = await ctx.model.complete(messages, tools)
            span.set_attributes({"gen_ai.usage.input_tokens": reply.usage.input_tokens,
                                 "gen_ai.usage.output_tokens": reply.usage.output_tokens})  # fmt: skip
        messages.append(reply.message())
        calls: list[CallSummary] = []
        stop = False
        for call in reply.tool_calls:
            outcome = await ctx.toolbox.call_json(call.name, call.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.text})
            calls.append(CallSummary(name=call.name, ok=outcome.ok))
            stop = stop or (outcome.ok and call.name in stop_on)
        added, saved = messages[saved:], len(messages)
        ctx.journal.step(StepRecord(agent=agent, round=round_no, step=step, model=reply.model or ctx.model.name,
                                    usage=reply.usage, cost_usd=cost_of(ctx.prices, ctx.model.name, reply.usage),
                                    wall_s=time.monotonic() - started, calls=calls, messages=added))  # fmt: skip
        if stop:
            return ""
        if not reply.tool_calls:
            return reply.content or ""
