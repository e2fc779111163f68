"""Budgets: each limit stops a task at the first step that reaches it, naming the setting that raises it."""

from __future__ import annotations

import pytest

from agents.budget import Budget, BudgetExceeded, Spend, check, cost_of
from agents.chat import Usage

PRICES = {"gpt-test": (2.0, 8.0)}  # USD per million input, output tokens


def test_a_fresh_spend_passes_the_default_budget() -> None:
    check(Budget(), Spend())


@pytest.mark.parametrize(
    ("budget", "below", "at", "setting"),
    [
        (Budget(max_steps=3), Spend(steps=2), Spend(steps=3), "SHIPWAY_AGENT_MAX_STEPS"),
        (Budget(max_wall_s=60), Spend(wall_s=59.9), Spend(wall_s=60.0), "SHIPWAY_AGENT_MAX_WALL_S"),
        (
            Budget(max_tokens=1_000),
            Spend(input_tokens=600, output_tokens=399),
            Spend(input_tokens=600, output_tokens=400),
            "SHIPWAY_AGENT_MAX_TOKENS",
        ),
        (Budget(max_cost_usd=0.5), Spend(cost_usd=0.4999), Spend(cost_usd=0.5), "SHIPWAY_AGENT_MAX_COST_USD"),
    ],
    ids=["steps", "wall", "tokens", "cost"],
)
def test_check_raises_at_each_limit_naming_its_setting_and_not_below(
    budget: Budget, below: Spend, at: Spend, setting: str
) -> None:
    check(budget, below)
    with pytest.raises(BudgetExceeded, match=setting):
        check(budget, at)
    over = at.model_copy(
        update={
            "steps": at.steps * 2,
            "wall_s": at.wall_s * 2,
            "input_tokens": at.input_tokens * 2,
            "cost_usd": at.cost_usd * 2,
        }
    )
    with pytest.raises(BudgetExceeded, match=setting):
        check(budget, over)


def test_the_messages_say_what_was_used_and_what_the_limit_is() -> None:
    with pytest.raises(BudgetExceeded) as steps:
        check(Budget(max_steps=5), Spend(steps=5))
    assert "5 model calls used, the limit is 5" in str(steps.value)
    with pytest.raises(BudgetExceeded) as tokens:
        check(Budget(max_tokens=1_500_000), Spend(input_tokens=1_000_000, output_tokens=600_000))
    assert "1,600,000 tokens used" in str(tokens.value) and "1,500,000" in str(tokens.value)
    with pytest.raises(BudgetExceeded) as cost:
        check(Budget(max_cost_usd=2), Spend(cost_usd=2.5))
    assert "$2.5000 used" in str(cost.value) and "$2" in str(cost.value)


def test_without_a_cost_limit_any_cost_passes() -> None:
    check(Budget(max_cost_usd=None), Spend(cost_usd=1e9))


def test_the_first_limit_reached_is_the_one_reported() -> None:
    with pytest.raises(BudgetExceeded, match="SHIPWAY_AGENT_MAX_STEPS"):
        check(Budget(max_steps=1, max_tokens=1), Spend(steps=1, input_tokens=5))


def test_budget_limits_must_be_positive() -> None:
    for bad in ({"max_steps": 0}, {"max_wall_s": 0}, {"max_tokens": 0}, {"max_cost_usd": 0}):
        with pytest.raises(ValueError, match="greater than"):
            Budget(**bad)


def test_cost_of_uses_the_per_million_prices() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert cost_of(PRICES, "gpt-test", usage) == pytest.approx(2.0 + 4.0)
    assert cost_of(PRICES, "gpt-test", Usage(input_tokens=1_500, output_tokens=250)) == pytest.approx(0.005)
    assert cost_of(PRICES, "gpt-test", Usage()) == 0.0


def test_cost_of_an_unknown_model_is_zero() -> None:
    assert cost_of(PRICES, "some-local-model", Usage(input_tokens=10**9, output_tokens=10**9)) == 0.0
    assert cost_of({}, "gpt-test", Usage(input_tokens=5, output_tokens=5)) == 0.0


def test_spend_add_accumulates_every_step() -> None:
    spend = Spend()
    spend.add(Usage(input_tokens=100, output_tokens=20), cost_usd=0.01, wall_s=1.5)
    spend.add(Usage(input_tokens=300, output_tokens=5), cost_usd=0.02, wall_s=2.0)
    assert (spend.steps, spend.input_tokens, spend.output_tokens) == (2, 400, 25)
    assert spend.cost_usd == pytest.approx(0.03) and spend.wall_s == pytest.approx(3.5)


def test_a_spend_grown_by_add_trips_the_check() -> None:
    budget, spend = Budget(max_steps=10, max_tokens=250), Spend()
    spend.add(Usage(input_tokens=100, output_tokens=20), 0.0, 0.1)
    check(budget, spend)
    spend.add(Usage(input_tokens=100, output_tokens=30), 0.0, 0.1)
    with pytest.raises(BudgetExceeded, match="SHIPWAY_AGENT_MAX_TOKENS"):
        check(budget, spend)
