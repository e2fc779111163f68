"""`shipway test …` and `shipway ci …`: run tests, read reports and logs, ask for CI."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from mcp_server.app import ServerDeps, open_deps
from mcp_server.cli_common import cli_actor
from mcp_server.config import Settings, load_settings
from mcp_server.errors import ConfigError, ShipwayError
from sandbox.errors import SandboxError
from tools.errors import ToolInputError
from tools.testrun.report import Selection, TestReport

EXIT = {"passed": 0, "failed": 1, "error": 2}
CI_EXIT = {"success": 0, "failure": 1, "error": 2, "pending": 3}


def _checkout_deps(path: Path) -> ServerDeps:
    """Deps for testing a directory in place; a directory outside git keeps its state in a temp dir."""
    try:
        return open_deps(load_settings(repo=path))
    except ConfigError:
        if not path.is_dir():
            raise
        return open_deps(Settings(repo=path, state_dir=Path(tempfile.mkdtemp(prefix="shipway-test-"))))


@click.group("test")
def test_group() -> None:
    """Run tests in the sandbox and read their reports."""


@test_group.command("run")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="Directory to test in place (default: the current one). Ignored with --task.")  # fmt: skip
@click.option("--task", "task_id", default=None, help="Test this task's worktree instead.")
@click.option("--selection", type=click.Choice(["affected", "full", "paths"]), default=None,
              help="affected (default with --task), full (default otherwise) or paths.")  # fmt: skip
@click.option("--path", "paths", multiple=True, help="A test file, directory or id; implies --selection paths.")
@click.option("--no-baseline", is_flag=True, help="Do not compare with the base commit.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def test_run(repo: Path | None, task_id: str | None, selection: str | None, paths: tuple[str, ...],
             no_baseline: bool, as_json: bool) -> None:  # fmt: skip
    """Run the tests. Exit 0 when every selected test passes, 1 when some fail, 2 when they could not run."""
    from mcp_server.cli_format import safe, test_report_text

    default = "paths" if paths else "affected" if task_id else "full"
    chosen: Selection = selection or default  # type: ignore[assignment]
    try:
        if task_id:
            report = open_deps(load_settings(repo=repo)).tests.run_task(
                task_id, chosen, list(paths) or None, cli_actor(), not no_baseline
            )
        else:
            from mcp_server.test_runs import check_selection

            clean = check_selection(chosen, list(paths) or None)
            deps = _checkout_deps((repo or Path.cwd()).resolve())
            target = deps.tests.checkout_target((repo or Path.cwd()).resolve())
            report = deps.tests.run(target, chosen, clean, not no_baseline)
    except (ShipwayError, SandboxError, ToolInputError) as exc:
        click.echo(f"shipway: tests could not run: {safe(str(exc))}", err=True)
        sys.exit(2)
    _print(report, as_json, test_report_text)
    if report.status == "error":
        reason = (report.reason or "see the log").splitlines()[0]
        click.echo(f"shipway: tests could not run: {safe(reason)}", err=True)
    sys.exit(EXIT[report.status])


def _print(report: TestReport, as_json: bool, text: object) -> None:
    click.echo(report.model_dump_json(indent=2) if as_json else text(report))  # type: ignore[operator]


@test_group.command("report")
@click.argument("run_id")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=None, help="Repository.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def test_report(run_id: str, repo: Path | None, as_json: bool) -> None:
    """Show a test run's report."""
    from mcp_server.cli_format import test_report_text

    _print(open_deps(load_settings(repo=repo)).tests.report(run_id), as_json, test_report_text)


@test_group.command("log")
@click.argument("run_id")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=None, help="Repository.")
def test_log(run_id: str, repo: Path | None) -> None:
    """Print a test run's full log."""
    from mcp_server.cli_format import safe

    click.echo(safe(open_deps(load_settings(repo=repo)).tests.log_text(run_id)), nl=False)


@click.group("ci")
def ci_group() -> None:
    """The CI gate on a task's branch."""


@ci_group.command("status")
@click.argument("task_id")
@click.option("--wait", "wait_s", type=float, default=600.0, show_default=True, help="Seconds to wait for CI.")
@click.option("--repo", type=click.Path(path_type=Path, file_okay=False), default=None, help="Repository.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ci_status(task_id: str, wait_s: float, repo: Path | None, as_json: bool) -> None:
    """Run (or read) CI on the task branch's head. Exit 0 success, 1 failure, 2 error, 3 still pending."""
    from mcp_server.cli_format import ci_text

    status = open_deps(load_settings(repo=repo)).ci.status(task_id, wait_s)
    click.echo(status.model_dump_json(indent=2) if as_json else ci_text(status))
    sys.exit(CI_EXIT[status.state])
