"""The `shipway` command line: the server, and every task operation, scriptable with --json.

Errors are one line on stderr: `shipway: error: <what failed and what to do>`, exit 1 (exit 2
for a usage mistake). Data goes to stdout; with --json it is the same model the MCP tool
returns.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mcp_server import __version__
from mcp_server.cli_common import cli_actor, deps_for, emit, json_option, repo_option
from mcp_server.config import load_settings
from mcp_server.errors import ShipwayError
from mcp_server.tasks.model import TaskState
from mcp_server.telemetry import setup_tracing
from sandbox.errors import SandboxError
from tools.errors import ToolInputError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="shipway", message="%(prog)s %(version)s")
def cli() -> None:
    """Shipway: sandboxed engineering tools and agents behind a server-side review gate."""


@cli.command()
@click.option("--stdio", "transport", flag_value="stdio", default=True, help="Serve MCP on stdin/stdout (default).")
@click.option("--http", "transport", flag_value="http", help="Serve MCP over streamable HTTP.")
@click.option("--host", default=None, help="HTTP bind address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP port (default 8765; 0 picks a free one).")
@click.option("--toolset", type=click.Choice(["agent", "reviewer"]), default=None, help="Tools to serve.")
@repo_option
def serve(transport: str, host: str | None, port: int | None, toolset: str | None, repo: Path | None) -> None:
    """Run the MCP server for one repository."""
    from mcp_server.serving import serve_http_forever, serve_stdio

    settings = load_settings(repo=repo, host=host, port=port, toolset=toolset)
    if transport == "stdio":
        serve_stdio(settings)
    else:
        serve_http_forever(settings)


@cli.command("client-config")
@click.option("--url", default=None, help="URL of a running HTTP server, to add HTTP snippets.")
@repo_option
def client_config(url: str | None, repo: Path | None) -> None:
    """Print MCP client configuration for Warp, VS Code, Cursor and Claude Code."""
    from mcp_server.client_config import client_snippets

    settings = load_settings(repo=repo)
    shipway_bin = Path(sys.executable).parent / "shipway"
    click.echo(client_snippets(shipway_bin, settings.repo, url, token_required=settings.http_token is not None))


@cli.group()
def task() -> None:
    """Start, inspect, abort and verify tasks."""


def _read_request(request: str) -> str:
    return sys.stdin.read() if request == "-" else request


@task.command("start")
@click.argument("request")
@click.option("--manual", is_flag=True, help="Only create the task; you drive it with the tools (no agents).")
@click.option("--wait", is_flag=True, help="Follow the agents until the task waits for a person or ends.")
@repo_option
@json_option
def task_start(request: str, manual: bool, wait: bool, repo: Path | None, as_json: bool) -> None:
    """Start a task for REQUEST (- reads it from stdin); Shipway's agents take it from there."""
    from mcp_server.cli_agents import follow
    from mcp_server.cli_format import task_text

    deps = deps_for(repo)
    task = deps.tasks.start(_read_request(request), cli_actor(), autonomous=not manual)
    emit(task, as_json, task_text)
    if wait and not manual:
        sys.exit(follow(deps, task.id, until_waiting=True))


@task.command("list")
@click.option("--state", type=click.Choice([s.value for s in TaskState]), default=None)
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@repo_option
@json_option
def task_list(state: str | None, limit: int, offset: int, repo: Path | None, as_json: bool) -> None:
    """List tasks, newest first."""
    from mcp_server.cli_format import page_text

    page = deps_for(repo).tasks.page(TaskState(state) if state else None, limit, offset)
    emit(page, as_json, page_text)


@task.command("show")
@click.argument("task_id")
@repo_option
@json_option
def task_show(task_id: str, repo: Path | None, as_json: bool) -> None:
    """Show one task."""
    from mcp_server.cli_format import task_text

    emit(deps_for(repo).tasks.get(task_id), as_json, task_text)


@task.command("log")
@click.argument("task_id")
@click.option("--after", "after_seq", type=int, default=0, help="Only events after this sequence number.")
@click.option("--limit", type=int, default=200, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until the task ends (Ctrl-C stops).")
@repo_option
@json_option
def task_log(task_id: str, after_seq: int, limit: int, follow: bool, repo: Path | None, as_json: bool) -> None:
    """Show a task's audit log."""
    from mcp_server.cli_agents import follow as follow_log
    from mcp_server.cli_format import log_text

    deps = deps_for(repo)
    if follow:
        sys.exit(follow_log(deps, task_id, after_seq=after_seq, as_json=as_json))
    emit(deps.tasks.log(task_id, after_seq, limit), as_json, log_text)


@task.command("abort")
@click.argument("task_id")
@click.option("--reason", required=True, help="Why the task is stopped (logged).")
@repo_option
@json_option
def task_abort(task_id: str, reason: str, repo: Path | None, as_json: bool) -> None:
    """Abort a live task."""
    from mcp_server.cli_format import task_text

    emit(deps_for(repo).tasks.abort(task_id, reason, cli_actor()), as_json, task_text)


@task.command("verify")
@click.argument("task_id", required=False)
@click.option("--all", "every", is_flag=True, help="Verify every task in the store.")
@repo_option
@json_option
def task_verify(task_id: str | None, every: bool, repo: Path | None, as_json: bool) -> None:
    """Check a task's hash chain (exit 1 if it is broken)."""
    from mcp_server.cli_format import VerifyResult, verify_text

    if bool(task_id) == every:
        raise click.UsageError("give a TASK_ID or --all")
    tasks = deps_for(repo).tasks
    result = VerifyResult(reports=tasks.verify_all() if every else [tasks.verify(task_id or "")])
    emit(result, as_json, verify_text)
    if not result.ok:
        sys.exit(1)


@cli.command("index")
@click.option("--no-semantic", is_flag=True, help="Only the lexical and symbol indexes (skip embedding).")
@repo_option
@json_option
def index_repo(no_semantic: bool, repo: Path | None, as_json: bool) -> None:
    """Build or update the search index of the repository's HEAD (incremental)."""
    from mcp_server.app import open_search
    from mcp_server.cli_format import index_text

    emit(open_search(load_settings(repo=repo)).build(semantic=not no_semantic), as_json, index_text)


@cli.command("search")
@click.argument("query", required=False)
@click.option(
    "--query-file", type=click.File("r", encoding="utf-8", errors="replace"), help="Read the query from a file."
)
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True, help="How many results.")
@click.option(
    "--kind", type=click.Choice(["hybrid", "lexical", "symbol", "semantic"]), default="hybrid", show_default=True
)
@click.option("--glob", "path_glob", default=None, help="Only paths matching this glob, e.g. 'src/*.py'.")
@click.option("--files", "files_only", is_flag=True, help="Print ranked unique file paths, one per line.")
@repo_option
@json_option
def search_command(
    query: str | None, query_file: Any, k: int, kind: str, path_glob: str | None, files_only: bool,
    repo: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Search the repository: QUERY is words, identifiers, an error message or a stack trace."""
    from mcp_server.app import open_search
    from mcp_server.cli_format import search_text

    if bool(query) == bool(query_file):
        raise click.UsageError("give a QUERY or --query-file (one of them)")
    text = query if query else query_file.read()
    search = open_search(load_settings(repo=repo))
    if files_only:
        for path in search.ranked_files(text, kind, path_glob)[:k]:
            click.echo(safe_path(path))
        return
    emit(search.search_repo(text, k, kind, path_glob), as_json, search_text)


def safe_path(path: str) -> str:
    from mcp_server.cli_format import safe

    return safe(path)


@cli.group("diff")
def diff_group() -> None:
    """Apply edits (any directory, or a task's worktree) and show a task's change."""


@diff_group.command("apply")
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Directory to edit (git not required; default: the current directory). Ignored with --task.",
)
@click.option("--task", "task_id", default=None, help="Apply to this task's worktree and commit it.")
@click.option(
    "--patch",
    "patch_file",
    type=click.File("rb"),
    required=True,
    help="Unified diff or SEARCH/REPLACE file ('-' for stdin).",
)
@click.option("--dry-run", is_flag=True, help="Check and print the result; write nothing.")
@json_option
def diff_apply(repo: Path | None, task_id: str | None, patch_file: Any, dry_run: bool, as_json: bool) -> None:
    """Apply a patch all or nothing. Exit 0 when applied (or already applied), 1 when refused."""
    from mcp_server.cli_format import edit_text, safe
    from tools.edits.engine import run_edit

    raw = patch_file.read()
    try:
        patch = raw.decode("utf-8")
    except UnicodeDecodeError:
        patch = raw.decode("latin-1")
    if task_id:
        deps = deps_for(repo)
        report = deps.workspaces.edit(task_id, cli_actor(), patch=patch, dry_run=dry_run)
    else:
        report = run_edit((repo or Path.cwd()).resolve(), patch=patch, dry_run=dry_run)
    if report.status == "refused":
        if as_json:
            click.echo(report.model_dump_json(indent=2))
        else:
            click.echo(safe(report.refusal()), err=True)
        sys.exit(1)
    emit(report, as_json, edit_text)


@diff_group.command("show")
@click.argument("task_id")
@repo_option
@json_option
def diff_show(task_id: str, repo: Path | None, as_json: bool) -> None:
    """The task's whole change: its branch against the base commit."""
    from mcp_server.cli_format import diff_text

    emit(deps_for(repo).workspaces.diff(task_id), as_json, diff_text)


@diff_group.command("revert")
@click.argument("task_id")
@repo_option
@json_option
def diff_revert(task_id: str, repo: Path | None, as_json: bool) -> None:
    """Undo the task's most recent edit."""
    report = deps_for(repo).workspaces.revert(task_id, cli_actor())
    emit(report, as_json, lambda r: f"reverted {r.reverted_commit[:12]}; {r.edits_left} edit(s) left")


@cli.group()
def sandbox() -> None:
    """Run commands in the sandbox."""


@sandbox.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--task", "task_id", default=None, help="Run in this task's worktree (created if needed).")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Seconds before the command is killed.")
@repo_option
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def sandbox_exec(
    task_id: str | None, timeout_s: float | None, repo: Path | None, as_json: bool, command: tuple[str, ...]
) -> None:
    """Run COMMAND sandboxed, over a throwaway worktree of HEAD (or a task's worktree).

    Put -- before the command: shipway sandbox exec --repo . -- pytest -q
    """
    deps = deps_for(repo)
    timeout = timeout_s if timeout_s is not None else deps.settings.command_timeout_s
    if task_id:
        result = deps.workspaces.run(task_id, list(command), timeout, cli_actor())
    else:
        result = deps.workspaces.run_throwaway(list(command), timeout)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        if result.limit_hit:
            click.echo(f"shipway: stopped: {result.limit_hit}", err=True)
    if result.warning:
        click.echo(f"shipway: warning: {result.warning}", err=True)
    sys.exit(result.exit_code)


from mcp_server.cli_agents import register as register_agents  # noqa: E402 - they use the helpers above
from mcp_server.cli_agents import register_demo  # noqa: E402
from mcp_server.cli_previews import preview_group  # noqa: E402
from mcp_server.cli_review import register as register_review  # noqa: E402
from mcp_server.cli_scale import tables_group  # noqa: E402
from mcp_server.cli_tests import ci_group, test_group  # noqa: E402

cli.add_command(test_group)
cli.add_command(ci_group)
cli.add_command(preview_group)
cli.add_command(tables_group)
register_review(cli)
register_agents(cli, task)
register_demo(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning every expected error into one line and an exit code."""
    try:
        setup_tracing()
        status = cli.main(args=argv, prog_name="shipway", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "shipway"
        click.echo(f"shipway: error: {exc.format_message()} (see `{where} --help`)", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("shipway: aborted", err=True)
        sys.exit(130)
    except (ShipwayError, SandboxError, ToolInputError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"shipway: error: {message}", err=True)
        sys.exit(1)
    if isinstance(status, int) and status:
        sys.exit(status)
