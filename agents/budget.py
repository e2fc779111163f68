"""Budgets: how much agent work one task may use, and what it has used so far.

A task's spend adds up every agent step it ever took (planner and coder, across worker runs
and restarts); time spent waiting for people is not counted. The check runs before each
model call, so a task stops at the first step past any limit, with a reason that names the
limit and the setting that raises it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.chat import Usage

Prices = dict[str, tuple[float, float]]
"""Model name -> (USD per million input tokens, USD per million output tokens)."""


class BudgetExceeded(Exception):
    """A task used up one of its limits; the message says which and how to raise it."""


class Budget(BaseModel):
    max_steps: int = Field(default=80, ge=1, description="Model calls per task")
    max_wall_s: float = Field(default=3_600.0, gt=0, description="Seconds of agent work per task")
    max_tokens: int = Field(default=2_000_000, ge=1, description="Input plus output tokens per task")
    max_cost_usd: float | None = Field(default=None, gt=0, description="USD per task; needs the model's price")


class Spend(BaseModel):
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0

    def add(self, usage: Usage, cost_usd: float, wall_s: float) -> None:
        self.steps += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cost_usd += cost_usd
        self.wall_s += wall_s


def cost_of(prices: Prices, model: str, usage: Usage) -> float:
    """USD for `usage` on `model`, 0.0 when the price table does not list it."""
    price = prices.get(model)
    if price is None:
        return 0.0
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000


def check(budget: Budget, spend: Spend) -> None:
    """Raise BudgetExceeded when `spend` has reached any limit of `budget`."""
    if spend.steps >= budget.max_steps:
        raise BudgetExceeded(f"budget: {spend.steps} model calls used, the limit is {budget.max_steps} "
                             "(SHIPWAY_AGENT_MAX_STEPS)")  # fmt: skip
    if spend.wall_s >= budget.max_wall_s:
        raise BudgetExceeded(f"budget: {spend.wall_s:.0f}s of agent work used, the limit is {budget.max_wall_s:g}s "
                             "(SHIPWAY_AGENT_MAX_WALL_S)")  # fmt: skip
    tokens = spend.input_tokens + spend.output_tokens
    if tokens >= budget.max_tokens:
        raise BudgetExceeded(f"budget: {tokens:,} tokens used, the limit is {budget.max_tokens:,} "
                             "(SHIPWAY_AGENT_MAX_TOKENS)")  # fmt: skip
    if budget.max_cost_usd is not None and spend.cost_usd >= budget.max_cost_usd:
        raise BudgetExceeded(f"budget: ${spend.cost_usd:.4f} used, the limit is ${budget.max_cost_usd:g} "
                             "(SHIPWAY_AGENT_MAX_COST_USD)")  # fmt: skip
