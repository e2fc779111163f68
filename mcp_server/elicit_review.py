"""`ask_reviewer`: ask the person at the MCP client to decide, through MCP elicitation.

Some clients can show a form to their user mid-call (elicitation); there the agent can ask for
a decision instead of telling the user to switch to the CLI or the review page. The question
names exactly what is decided (the plan's sha256, the PR's head commit) and the answer goes
through the same gate methods, bound to it: if the plan or the head changed while the form was
open, the decision is refused like any stale one.

Served only with SHIPWAY_ELICIT_REVIEWS=1. Elicitation answers come from the client program,
and the MCP spec asks clients to put every form in front of their user, but a headless
agent harness could answer on its own. So it is an opt-in for people who run an interactive
client, the decision is recorded as `human:<server user>` with `via: mcp elicitation`, and
SHIPWAY_FORBID_SELF_APPROVAL still applies. The form asks for nothing secret (the spec forbids
that), and a client without elicitation gets an error naming the two-call flow instead.

No `from __future__ import annotations` here: the SDK evaluates the tool's annotations, and
`Resolve(ask)` names a function local to `ask_reviewer_tool`.
"""

import getpass
from collections.abc import Callable
from typing import Annotated, Literal

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import BaseModel, Field

from mcp_server.errors import UserInputError
from mcp_server.review_gate import PlanView, PullRequest, ReviewGate
from mcp_server.tasks.model import Actor, TaskState
from tools.errors import ToolInputError

MAX_QUESTION_CHARS = 6_000


class ReviewAnswer(BaseModel):
    decision: Literal["approve", "request_changes", "reject"] = Field(description="Your decision")
    comment: str = Field(default="", description="Why; required to request changes or reject", max_length=10_000)


class ElicitedReview(BaseModel):
    task_id: str
    asked: Literal["plan", "pr"]
    outcome: Literal["approved", "changes_requested", "rejected", "declined", "cancelled"]
    plan: PlanView | None = None
    pr: PullRequest | None = None


def _question(gate: ReviewGate, task_id: str) -> tuple[Literal["plan", "pr"], str, str]:
    """What waits for a decision, the sha it is bound to, and the text to show."""
    task = gate.tasks.get(task_id)
    if task.state == TaskState.PLAN_REVIEW:
        view = gate.plan(task.id)
        assert view.plan is not None and view.plan_sha256 is not None
        text = f"Shipway asks you to review the plan for task {task.id} ({task.title}).\n\n{view.plan.markdown()}"
        return "plan", view.plan_sha256, f"{text[:MAX_QUESTION_CHARS]}\n\nPlan sha256 {view.plan_sha256[:16]}."
    if task.state == TaskState.REVIEW:
        pr = gate.pr(task.id)
        diff = gate.workspaces.diff(task.id)
        files = "\n".join(f"- {f.path} (+{f.added} -{f.removed})" for f in diff.files)
        text = (
            f"Shipway asks you to review the pull request of task {task.id}: {pr.title}.\nCI: {pr.ci}. "
            f"Head {pr.head_sha[:12]}. Files:\n{files}\n\nThe diff: show_diff, or the review page."
        )
        return "pr", pr.head_sha, text[:MAX_QUESTION_CHARS]
    raise UserInputError(f"task {task.id} is {task.state}: nothing waits for a reviewer (plan_review or review)")


def ask_reviewer_tool(gate: ReviewGate) -> Callable[..., ElicitedReview]:
    def ask(task_id: str) -> Elicit[ReviewAnswer]:
        try:  # runs before the tool body, so outside caller_errors
            _, _, text = _question(gate, task_id)
        except (UserInputError, ToolInputError) as exc:
            raise ToolError(str(exc)) from exc
        return Elicit(text, ReviewAnswer)

    def ask_reviewer(
        task_id: Annotated[str, Field(description="Task id, or a unique prefix of 4+ characters", max_length=64)],
        answer: Annotated[ElicitationResult[ReviewAnswer], Resolve(ask)],
    ) -> ElicitedReview:
        """Ask the person at this client to approve, send back or reject what waits for review (plan or PR)."""
        kind, bound, _ = _question(gate, task_id)
        task = gate.tasks.get(task_id)
        if not isinstance(answer, AcceptedElicitation):
            return ElicitedReview(task_id=task.id, asked=kind, outcome="declined" if answer.action == "decline"
                                  else "cancelled")  # fmt: skip
        reply: ReviewAnswer = answer.data
        person = Actor(kind="human", name=getpass.getuser())
        origin = {"via": "mcp elicitation"}
        if kind == "plan":
            if reply.decision == "approve":
                view = gate.approve_plan(task.id, reply.comment, person, bound)
            else:
                view = gate.reject_plan(task.id, reply.comment, person)
            outcome = "approved" if reply.decision == "approve" else "changes_requested"
            return ElicitedReview(task_id=task.id, asked=kind, outcome=outcome, plan=view)  # type: ignore[arg-type]
        if reply.decision == "approve":
            pr = gate.approve_pr(task.id, reply.comment, person, bound, origin)
        elif reply.decision == "request_changes":
            pr = gate.request_changes(task.id, reply.comment, person, origin)
        else:
            pr = gate.reject_pr(task.id, reply.comment, person)
        outcome = {"approve": "approved", "request_changes": "changes_requested", "reject": "rejected"}[reply.decision]
        return ElicitedReview(task_id=task.id, asked=kind, outcome=outcome, pr=pr)  # type: ignore[arg-type]

    return ask_reviewer
