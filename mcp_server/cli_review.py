"""`shipway plan …`, `shipway pr …` and `shipway review …`: the review gate from a terminal.

Decisions made here are a person's (`human:<name>`): `--as NAME` names the reviewer, by default
the logged-in user. The same server-side rules apply as over MCP and on the review page.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mcp_server.cli_common import deps_for, json_option, person, repo_option
from mcp_server.reviewers import ReviewerStore
from mcp_server.tasks.model import TaskState
from tools.plan import Plan

as_option = click.option("--as", "reviewer", default=None, help="Reviewer name (default: the logged-in user).")
comment_option = click.option("--comment", default="", help="What you decided and why.")
PR_STATES = (TaskState.PR_OPEN, TaskState.CI, TaskState.REVIEW, TaskState.APPROVED, TaskState.NEEDS_CHANGES,
             TaskState.MERGED)  # fmt: skip


def show(value: object, as_json: bool) -> None:
    from mcp_server.cli_format import plan_text, pr_text
    from mcp_server.review_gate import PlanView

    if as_json:
        click.echo(value.model_dump_json(indent=2))  # type: ignore[attr-defined]
    else:
        click.echo(plan_text(value) if isinstance(value, PlanView) else pr_text(value))  # type: ignore[arg-type]


@click.group("plan")
def plan_group() -> None:
    """Read, propose, approve or reject a task's plan."""


@plan_group.command("show")
@click.argument("task_id")
@repo_option
@json_option
def plan_show(task_id: str, repo: Path | None, as_json: bool) -> None:
    """The task's newest plan and the decisions on it."""
    show(deps_for(repo).gate.plan(task_id), as_json)


@plan_group.command("propose")
@click.argument("task_id")
@click.option("--file", "plan_file", type=click.File("r"), required=True, help="The plan as JSON ('-' for stdin).")
@repo_option
@json_option
def plan_propose(task_id: str, plan_file: object, repo: Path | None, as_json: bool) -> None:
    """Propose a plan from a JSON file: {"goal", "steps", "files", "tests", "risks", "acceptance"}."""
    try:
        plan = Plan.model_validate(json.loads(plan_file.read()))  # type: ignore[attr-defined]
    except ValueError as exc:
        raise click.ClickException(f"the plan is not valid: {exc}") from exc
    show(deps_for(repo).gate.propose_plan(task_id, plan, person()), as_json)


@plan_group.command("approve")
@click.argument("task_id")
@as_option
@comment_option
@repo_option
@json_option
def plan_approve(task_id: str, reviewer: str | None, comment: str, repo: Path | None, as_json: bool) -> None:
    """Approve the plan waiting for review."""
    show(deps_for(repo).gate.approve_plan(task_id, comment, person(reviewer)), as_json)


@plan_group.command("reject")
@click.argument("task_id")
@as_option
@click.option("--comment", required=True, help="What the plan should change.")
@repo_option
@json_option
def plan_reject(task_id: str, reviewer: str | None, comment: str, repo: Path | None, as_json: bool) -> None:
    """Send the plan back to planning with a comment."""
    show(deps_for(repo).gate.reject_plan(task_id, comment, person(reviewer)), as_json)


@click.group("pr")
def pr_group() -> None:
    """Pull requests of tasks."""


@pr_group.command("list")
@repo_option
@json_option
def pr_list(repo: Path | None, as_json: bool) -> None:
    """Tasks with a pull request, newest first."""
    deps = deps_for(repo)
    prs = []
    for state in PR_STATES:
        tasks, _ = deps.tasks.store.page(state=state, limit=200)
        prs += [deps.gate.pr(t.id) for t in tasks]
    prs = [pr for pr in prs if pr.state != "none"]
    if as_json:
        click.echo(json.dumps([pr.model_dump(mode="json") for pr in prs], indent=2))
        return
    from mcp_server.cli_format import safe

    for pr in prs:
        click.echo(f"{pr.task_id}  {pr.task_state:<13} ci:{pr.ci:<8} {safe(pr.title or '')}")
    if not prs:
        click.echo("no pull requests")


@pr_group.command("show")
@click.argument("task_id")
@repo_option
@json_option
def pr_show(task_id: str, repo: Path | None, as_json: bool) -> None:
    """A task's pull request: head, approval, CI, conflicts, what merging still needs."""
    show(deps_for(repo).gate.pr(task_id), as_json)


@pr_group.command("open")
@click.argument("task_id")
@click.option("--title", default=None, help="Default: the request's first line.")
@click.option("--body", default=None, help="Text above the generated summary.")
@repo_option
@json_option
def pr_open(task_id: str, title: str | None, body: str | None, repo: Path | None, as_json: bool) -> None:
    """Open the task's pull request and start CI."""
    show(deps_for(repo).gate.open_pr(task_id, person(), title, body), as_json)


@pr_group.command("merge")
@click.argument("task_id")
@repo_option
@json_option
def pr_merge(task_id: str, repo: Path | None, as_json: bool) -> None:
    """Merge, when a reviewer approved the current head, CI is green and nothing conflicts."""
    show(deps_for(repo).gate.merge_pr(task_id, person()), as_json)


@click.group("review")
def review_group() -> None:
    """Decide on a task's pull request."""


@review_group.command("approve")
@click.argument("task_id")
@as_option
@comment_option
@click.option("--head", "head_sha", default=None, help="The head commit you reviewed; refused if it moved.")
@repo_option
@json_option
def review_approve(task_id: str, reviewer: str | None, comment: str, head_sha: str | None, repo: Path | None,
                   as_json: bool) -> None:  # fmt: skip
    """Approve the PR's current head."""
    show(deps_for(repo).gate.approve_pr(task_id, comment, person(reviewer), head_sha), as_json)


@review_group.command("request-changes")
@click.argument("task_id")
@as_option
@click.option("--comment", required=True, help="What should change.")
@repo_option
@json_option
def review_request_changes(task_id: str, reviewer: str | None, comment: str, repo: Path | None, as_json: bool) -> None:
    """Ask for changes; the task goes back to the agent."""
    show(deps_for(repo).gate.request_changes(task_id, comment, person(reviewer)), as_json)


@review_group.command("reject")
@click.argument("task_id")
@as_option
@click.option("--comment", required=True, help="Why the change is rejected.")
@repo_option
@json_option
def review_reject(task_id: str, reviewer: str | None, comment: str, repo: Path | None, as_json: bool) -> None:
    """Reject the PR; the task ends."""
    show(deps_for(repo).gate.reject_pr(task_id, comment, person(reviewer)), as_json)


@click.group("reviewer")
def reviewer_group() -> None:
    """Reviewer identities for the review page (`shipway serve --http`, then /review)."""


def _reviewers(repo: Path | None) -> ReviewerStore:
    from mcp_server.config import ensure_state_dir, load_settings

    return ReviewerStore(ensure_state_dir(load_settings(repo=repo).state_path))


@reviewer_group.command("add")
@click.argument("name")
@repo_option
def reviewer_add(name: str, repo: Path | None) -> None:
    """Add a reviewer (or give one a new token); prints the token once, keeps only its hash."""
    token = _reviewers(repo).add(name)
    click.echo(token)
    click.echo(f"reviewer {name} added: log in at /review with the token above (it is not stored; keep it safe)",
               err=True)  # fmt: skip


@reviewer_group.command("list")
@repo_option
def reviewer_list(repo: Path | None) -> None:
    """The reviewers who can log in."""
    for reviewer in _reviewers(repo).all():
        click.echo(f"{reviewer.name}  added {reviewer.added_at:%Y-%m-%d %H:%M} UTC")


@reviewer_group.command("remove")
@click.argument("name")
@repo_option
def reviewer_remove(name: str, repo: Path | None) -> None:
    """Remove a reviewer; their sessions end at once."""
    _reviewers(repo).remove(name)
    click.echo(f"reviewer {name} removed")


def register(cli: click.Group) -> None:
    for group in (plan_group, pr_group, review_group, reviewer_group):
        cli.add_command(group)
