"""Delivery metrics from the task logs: what the review site's metrics page charts.

Every number is computed from the hash-chained events, nothing is kept on the side:
- lead time: from `created` to `pr_merged`, per merged task;
- plan acceptance: human plan decisions that approved (policy approvals are left out);
- PR acceptance: PRs that ended merged, of those that ended merged or rejected;
- CI self-heal: tasks whose CI went red and later green on a new head;
- tokens and cost of agent work (the `agent_step` events), per task over time.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from mcp_server.agent_journal import spend_of
from mcp_server.tasks.model import Event, Task
from mcp_server.tasks.service import TaskService

MAX_TASKS = 200


class TaskMetrics(BaseModel):
    id: str
    title: str
    state: str
    created_at: datetime
    lead_time_s: float | None = Field(default=None, description="created -> merged")
    plan_approved: int = 0
    plan_rejected: int = 0
    pr_opened: bool = False
    ci_failed: int = 0
    ci_healed: bool = False
    tokens: int = 0
    cost_usd: float = 0.0
    agent_steps: int = 0


class Rate(BaseModel):
    hits: int
    total: int

    @property
    def percent(self) -> float | None:
        return 100.0 * self.hits / self.total if self.total else None


class Metrics(BaseModel):
    tasks: list[TaskMetrics] = Field(description="Oldest first")
    plan_acceptance: Rate
    pr_acceptance: Rate
    ci_self_heal: Rate


def task_metrics(task: Task, events: list[Event]) -> TaskMetrics:
    found = TaskMetrics(id=task.id, title=task.title, state=task.state, created_at=task.created_at)
    red: set[str] = set()  # commits CI failed on: a heal is green on another (a re-run going green fixes nothing)
    for event in events:
        human = event.actor.startswith("human:")
        if event.action == "plan_approved" and human:
            found.plan_approved += 1
        elif event.action == "plan_rejected" and human:
            found.plan_rejected += 1
        elif event.action == "pr_opened":
            found.pr_opened = True
        elif event.action == "ci_failed":
            found.ci_failed += 1
            red.add(str(event.payload.get("commit")))
        elif event.action == "ci_passed" and red and str(event.payload.get("commit")) not in red:
            found.ci_healed = True
        elif event.action == "pr_merged":
            found.lead_time_s = (event.at - task.created_at).total_seconds()
    spend = spend_of(events)
    found.tokens, found.cost_usd, found.agent_steps = (
        spend.input_tokens + spend.output_tokens,
        spend.cost_usd,
        spend.steps,
    )
    return found


def collect(tasks: TaskService, limit: int = MAX_TASKS) -> Metrics:
    """Metrics over the newest `limit` tasks."""
    page, _ = tasks.store.page(limit=limit)
    per_task = [task_metrics(t, tasks.store.events(t.id)) for t in reversed(page)]
    ended_pr = [t for t in per_task if t.pr_opened and t.state in ("merged", "rejected")]
    return Metrics(
        tasks=per_task,
        plan_acceptance=Rate(
            hits=sum(t.plan_approved for t in per_task), total=sum(t.plan_approved + t.plan_rejected for t in per_task)
        ),
        pr_acceptance=Rate(hits=sum(t.state == "merged" for t in ended_pr), total=len(ended_pr)),
        ci_self_heal=Rate(hits=sum(t.ci_healed for t in per_task), total=sum(t.ci_failed > 0 for t in per_task)),
    )
