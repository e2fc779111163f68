"""`shipway worker`, `shipway task continue`, and following a task's progress (`task log --follow`).

Exit codes of a follow: 0 when the task waits for a person or merged; 1 when it failed, was
rejected or aborted, or its agents paused or crashed (the last line says why and what to do).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import anyio
import click

from mcp_server.agent_dispatch import AGENT_STATES, launch_worker
from mcp_server.agent_journal import RUNS_DIR
from mcp_server.app import ServerDeps
from mcp_server.cli_common import deps_for, repo_option
from mcp_server.cli_format import event_line, safe
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Task, TaskState

POLL_S = 0.5
SILENT_WORKER_S = 20.0
STOPPED = ("agent_paused", "agent_crashed")


def follow(deps: ServerDeps, task_id: str, *, after_seq: int = 0, until_waiting: bool = False,
           as_json: bool = False) -> int:  # fmt: skip
    """Print the task's events as they come; the exit code says how it stopped."""
    tid = deps.tasks.resolve_id(task_id)
    seen, quiet_since = after_seq, time.monotonic()
    action = ""  # the newest event printed: only what happened after `after_seq` says how this run stopped
    try:
        while True:
            events = deps.tasks.store.events(tid, after_seq=seen)
            for event in events:
                click.echo(event.model_dump_json() if as_json else event_line(event))
                seen, action = event.seq, event.action
            now = time.monotonic()
            quiet_since = now if events else quiet_since
            task = deps.tasks.get(tid)
            if task.state in TERMINAL:
                return 0 if task.state == TaskState.MERGED else 1
            if until_waiting and action == "agent_waiting":
                return 0
            if until_waiting and action in STOPPED:
                return 1
            if until_waiting and now - quiet_since > SILENT_WORKER_S and _orphaned(deps, task):
                log = deps.settings.state_path / RUNS_DIR / tid / "worker.log"
                click.echo(f"shipway: error: no worker is running task {tid} (see {log}); "
                           f"`shipway task continue {tid}` runs it", err=True)  # fmt: skip
                return 1
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return 130


def _orphaned(deps: ServerDeps, task: Task) -> bool:
    lease = deps.queue.lease(task.id)
    return task.state in AGENT_STATES and (lease is None or not lease.live())


def register(cli: click.Group, task: click.Group) -> None:
    @task.command("continue")
    @click.argument("task_id")
    @click.option("--wait", is_flag=True, help="Follow the agents until the task waits for a person or ends.")
    @repo_option
    def task_continue(task_id: str, wait: bool, repo: Path | None) -> None:
        """Resume an autonomous task after a crash or a pause, from its last completed step."""
        from mcp_server.agent_worker import take_over

        deps = deps_for(repo)
        tid = take_over(deps, task_id)
        if deps.settings.agent_launch == "spawn":
            launch_worker(deps.settings, tid)
            click.echo(f"task {tid} queued; a worker is resuming it")
        else:
            click.echo(f"task {tid} queued for `shipway worker`")
        if wait:
            sys.exit(follow(deps, tid, after_seq=deps.tasks.get(tid).version, until_waiting=True))

    @cli.command()
    @click.option("--task", "task_id", default=None, help="Run only this task (queued, or held by no live worker).")
    @click.option("--once", is_flag=True, help="Run what is queued now, then exit.")
    @click.option("--poll", "poll_s", type=float, default=2.0, show_default=True, help="Seconds between looks.")
    @click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
                  help="Tasks this worker runs at once.")  # fmt: skip
    @click.option("--server", "server_url", default=None,
                  help="Call the tools of a running server (its MCP URL) instead of an in-process one; "
                       "sends $SHIPWAY_HTTP_TOKEN.")  # fmt: skip
    @repo_option
    def worker(task_id: str | None, once: bool, poll_s: float, concurrency: int, server_url: str | None,
               repo: Path | None) -> None:  # fmt: skip
        """Run Shipway's planner and coder on queued autonomous tasks."""
        from mcp_server.agent_worker import Worker, build_model

        deps = deps_for(repo)
        token = deps.settings.http_token.get_secret_value() if deps.settings.http_token else None
        runner = Worker(deps, build_model(deps.settings), server_url=server_url, http_token=token)
        if task_id is None and not once:
            logging.basicConfig(stream=sys.stderr, level="INFO", format="%(asctime)s %(name)s: %(message)s")
            click.echo(f"shipway worker {runner.name}: waiting for tasks, {concurrency} at a time (Ctrl-C stops)")
            anyio.run(runner.serve, poll_s, concurrency)
            return
        tid = deps.tasks.resolve_id(task_id) if task_id else None
        for outcome in anyio.run(runner.run_queued, tid):
            click.echo(f"{outcome.status}: {outcome.state}: {safe(outcome.reason)}")


def register_demo(cli: click.Group) -> None:
    @cli.command()
    @click.option("--dir", "workdir", type=click.Path(path_type=Path, file_okay=False), default=None,
                  help="Where to put the sample repository (default: a new temporary directory).")  # fmt: skip
    @click.option("--keep-serving", is_flag=True, help="Keep the review page up afterwards, until Ctrl+C.")
    def demo(workdir: Path | None, keep_serving: bool) -> None:
        """Replay the whole loop (plan, approval, diff, tests, PR, review, merge) on a sample repo."""
        from mcp_server.demo import run_demo

        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        sys.exit(run_demo(workdir, keep_serving, click.echo))
