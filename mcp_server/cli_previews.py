"""`shipway preview start|status|stop|approve|log TASK`: a task's deploy preview from a terminal.

The person at the terminal acts (`human:<name>`, or `--as NAME`): starting an S3 preview
yourself counts as approving it, under the same gate rules as `shipway preview approve`.
Exit status: 0, or 1 when the preview failed (the reason and the log's tail are printed).
"""

from __future__ import annotations

from pathlib import Path

import click

from mcp_server.cli_common import deps_for, emit, json_option, person, repo_option
from mcp_server.cli_format import safe
from mcp_server.previews import PreviewStatus

as_option = click.option("--as", "name", default=None, help="Who you are (default: the logged-in user).")


def preview_text(status: PreviewStatus) -> str:
    lines = [f"preview of task {status.task_id}: {status.state}" + (f" ({status.target})" if status.target else "")]
    if status.url:
        lines.append(f"  url:     {safe(status.url)}")
    if status.commit:
        stale = "  (stale: the task has newer commits)" if status.stale else ""
        lines.append(f"  commit:  {status.commit[:12]}{stale}")
    if status.expires_at and status.state in ("starting", "ready"):
        lines.append(f"  expires: {status.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    if status.reason:
        lines.append(f"  reason:  {safe(status.reason)}")
    if status.log_tail and status.state in ("failed", "expired"):
        lines += ["  log (tail):", *(f"    {safe(line)}" for line in status.log_tail.splitlines()[-15:])]
    return "\n".join(lines)


@click.group("preview")
def preview_group() -> None:
    """Start, watch, stop and approve a task's live preview."""


@preview_group.command("start")
@click.argument("task_id")
@click.option(
    "--target",
    type=click.Choice(["local", "s3"]),
    default="local",
    show_default=True,
    help="local: served from the sandbox on a loopback port; s3: uploaded to the configured bucket.",
)
@as_option
@repo_option
@json_option
def preview_start(task_id: str, target: str, name: str | None, repo: Path | None, as_json: bool) -> None:
    """Preview the task branch's head; prints the URL once it answers."""
    emit(deps_for(repo).previews.deploy(task_id, target, person(name)), as_json, preview_text)


@preview_group.command("status")
@click.argument("task_id")
@repo_option
@json_option
def preview_status(task_id: str, repo: Path | None, as_json: bool) -> None:
    """The task's preview: state, URL, commit, expiry (and why it ended)."""
    status = deps_for(repo).previews.status(task_id)
    emit(status, as_json, preview_text)
    if status.state == "failed":
        raise SystemExit(1)


@preview_group.command("stop")
@click.argument("task_id")
@as_option
@repo_option
@json_option
def preview_stop(task_id: str, name: str | None, repo: Path | None, as_json: bool) -> None:
    """Stop the task's preview and remove what it deployed."""
    emit(deps_for(repo).previews.stop(task_id, person(name)), as_json, preview_text)


@preview_group.command("approve")
@click.argument("task_id")
@click.option("--head", "head_sha", default=None, help="The head commit you looked at; refused if it moved.")
@as_option
@repo_option
@json_option
def preview_approve(task_id: str, head_sha: str | None, name: str | None, repo: Path | None, as_json: bool) -> None:
    """Approve the preview an agent asked for; it deploys the current head."""
    emit(deps_for(repo).previews.approve(task_id, person(name), head_sha), as_json, preview_text)


@preview_group.command("log")
@click.argument("task_id")
@repo_option
def preview_log(task_id: str, repo: Path | None) -> None:
    """The preview's log: build and server output."""
    deps = deps_for(repo)
    click.echo(deps.previews.log_text(deps.tasks.resolve_id(task_id)), nl=False)
