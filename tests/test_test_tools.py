"""run_tests / get_test_report over MCP and `shipway test run`, on the sample repos, in the real sandbox."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task
from tests.helpers.gitrepo import git
from tests.helpers.samples import commit_file, sample_repo
from tests.test_sandbox_tool import needs_bwrap, shipway
from tools.edits.blocks import EditBlock
from tools.testrun.report import TestReport

pytestmark = [pytest.mark.anyio, needs_bwrap]

BREAK_ADD = """\
--- a/calc/arith.py
+++ b/calc/arith.py
@@ -1,2 +1,2 @@
 def add(a: int, b: int) -> int:
-    return a + b
+    return a - b
"""
FIX_SLUG = """\
--- a/calc/text.py
+++ b/calc/text.py
@@ -4,3 +4,3 @@
 def slug(title: str) -> str:
     \"\"\"'Hello, World!' -> 'hello-world'.\"\"\"
-    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
+    return re.sub(r"[^\\w]+", "-", title.lower()).strip("-")
"""
ALREADY_FAILING = {
    "tests/test_broken_import.py",
    "tests/test_fixtures.py::test_reads_config",
    "tests/test_text.py::test_slug_keeps_unicode_letters",
}
ADD_TESTS = {"tests/test_arith.py::test_add_small_numbers", "tests/test_arith.py::test_add_negative"}


def open_sample(repo: Path, **settings: Any) -> ServerDeps:
    # The suite's own interpreter has pytest; the sandbox sees its virtualenv read-only.
    return open_deps(load_settings(repo=repo, test_python=sys.executable, **settings))


@pytest.fixture
def calc(tmp_path: Path) -> Iterator[ServerDeps]:
    built = open_sample(sample_repo("pytest-sample", tmp_path / "calc"))
    yield built
    built.tasks.store.close()


async def call(deps: ServerDeps, tool: str, **arguments: Any) -> Any:
    async with Client(create_server(deps)) as client:
        return await client.call_tool(tool, arguments)


async def run_tests(deps: ServerDeps, **arguments: Any) -> TestReport:
    result = await call(deps, "run_tests", **arguments)
    assert not result.is_error, result.content
    return TestReport.model_validate(result.structured_content)


def agent() -> Actor:
    return Actor(kind="agent", name="coder")


def edit(deps: ServerDeps, task: Task, patch: str) -> None:
    assert deps.workspaces.edit(task.id, agent(), patch=patch).status == "applied"


async def test_a_full_run_reports_every_outcome_with_file_line_and_phase(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("look at the tests", alice)
    report = await run_tests(calc, task_id=task.id, selection="full")
    assert report.status == "failed" and report.framework == "pytest" and report.per_test
    assert report.totals.model_dump() == {"passed": 6, "failed": 1, "errors": 2, "skipped": 3, "total": 12}
    found = {(f.id, f.outcome, f.phase, f.file, f.line) for f in report.failures}
    assert found == {
        ("tests/test_broken_import.py", "error", "collection", "tests/test_broken_import.py", 1),
        ("tests/test_fixtures.py::test_reads_config", "error", "setup", "tests/test_fixtures.py", 6),
        ("tests/test_text.py::test_slug_keeps_unicode_letters", "failed", "call", "tests/test_text.py", 13),
    }
    by_id = {f.id: f for f in report.failures}
    assert "No module named 'calc.missing'" in (by_id["tests/test_broken_import.py"].message or "")
    unicode = by_id["tests/test_text.py::test_slug_keeps_unicode_letters"]
    assert "cr-me-br-l-e" in (unicode.message or "") and "test_text.py:13" in (unicode.traceback or "")
    assert report.baseline is None, "an unchanged task has nothing to compare"
    event = calc.tasks.store.events(task.id)[-1]
    assert event.action == "tests_run" and event.payload["run_id"] == report.run_id
    assert event.payload["totals"]["failed"] == 1 and event.payload["status"] == "failed"


async def test_the_report_and_its_full_log_can_be_read_back_by_run_id(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("look at the tests", alice)
    report = await run_tests(calc, task_id=task.id, selection="full", baseline=False)
    again = await call(calc, "get_test_report", run_id=report.run_id)
    assert TestReport.model_validate(again.structured_content) == report
    async with Client(create_server(calc)) as client:
        log = await client.read_resource(report.log_uri)
    text = log.contents[0].text  # type: ignore[union-attr]
    assert "python -m pytest" in text and "1 failed, 6 passed, 2 skipped, 1 xfailed, 2 errors" in text
    missing = await call(calc, "get_test_report", run_id="0123456789ab")
    assert missing.is_error and "no test run" in missing.content[0].text


async def test_a_seeded_regression_is_caught_by_the_affected_selection_and_marked_new(
    calc: ServerDeps, alice: Actor
) -> None:
    task = calc.tasks.start("subtract instead", alice)
    edit(calc, task, BREAK_ADD)
    report = await run_tests(calc, task_id=task.id)  # affected is the default
    assert report.selection == "affected"
    assert report.selected == ["tests/test_arith.py", "tests/test_stats.py"]
    assert "calc/arith.py" in report.selection_reason
    assert report.totals.total == 5 and {f.id for f in report.failures} == ADD_TESTS
    assert {f.versus_base for f in report.failures} == {"new"}
    assert report.baseline is not None and set(report.baseline.newly_failing) == ADD_TESTS
    assert report.baseline.commit == task.base_commit and not report.baseline.cached
    again = await run_tests(calc, task_id=task.id)
    assert again.baseline is not None and again.baseline.cached, "the base commit's results are cached by SHA"


async def test_a_full_run_separates_what_the_change_broke_from_what_was_broken_before(
    calc: ServerDeps, alice: Actor
) -> None:
    task = calc.tasks.start("subtract instead", alice)
    edit(calc, task, BREAK_ADD)
    report = await run_tests(calc, task_id=task.id, selection="full")
    assert report.baseline is not None
    assert set(report.baseline.newly_failing) == ADD_TESTS
    assert set(report.baseline.still_failing) == ALREADY_FAILING
    verdicts = {f.id: f.versus_base for f in report.failures}
    assert verdicts == {**dict.fromkeys(ADD_TESTS, "new"), **dict.fromkeys(ALREADY_FAILING, "still_failing")}


async def test_a_fix_shows_up_as_newly_passing(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("keep accents in slugs", alice)
    edit(calc, task, FIX_SLUG)
    report = await run_tests(calc, task_id=task.id)
    assert report.selected == ["tests/test_text.py"]
    assert report.status == "passed"
    assert report.baseline is not None
    assert report.baseline.newly_passing == ["tests/test_text.py::test_slug_keeps_unicode_letters"]


async def test_uncommitted_changes_count_for_the_affected_selection(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("poke", alice)
    await call(calc, "run_command", task_id=task.id, command="sed -i 's/a + b/a * b/' calc/arith.py")
    report = await run_tests(calc, task_id=task.id)
    assert report.dirty and report.selected == ["tests/test_arith.py", "tests/test_stats.py"]
    assert (
        report.baseline is not None and "tests/test_arith.py::test_add_small_numbers" in report.baseline.newly_failing
    )


async def test_a_docs_only_change_selects_no_tests_and_says_why(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("docs", alice)
    calc.workspaces.edit(
        task.id, agent(), blocks=None, patch="--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-# calc-sample\n+# calc\n"
    )
    report = await run_tests(calc, task_id=task.id)
    assert report.status == "passed" and report.selected == [] and report.totals.total == 0
    assert "no test file imports the changed files (README.md)" in report.selection_reason
    assert report.exit_code is None, "nothing ran"


async def test_paths_selection_runs_only_the_named_tests(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("one test", alice)
    report = await run_tests(
        calc,
        task_id=task.id,
        selection="paths",
        paths=["tests/test_arith.py::test_mean_of_three", "tests/test_stats.py"],
    )
    assert report.status == "passed" and report.totals.total == 3
    assert report.selected == ["tests/test_arith.py::test_mean_of_three", "tests/test_stats.py"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"selection": "everything"}, "selection"),
        ({"selection": "paths"}, "needs paths"),
        ({"selection": "full", "paths": ["tests"]}, "only used with selection='paths'"),
        ({"selection": "paths", "paths": ["-k", "add"]}, "starts with '-'"),
        ({"selection": "paths", "paths": ["../outside/test_x.py"]}, "without '..'"),
        ({"selection": "paths", "paths": ["/etc/passwd"]}, "relative to the repository root"),
        ({"selection": "paths", "paths": ["tests/test_nope.py"]}, "no such test path"),
        ({"selection": "paths", "paths": ["x"] * 201}, "the limit is 200"),
    ],
)
async def test_bad_selections_are_refused_and_run_nothing(
    calc: ServerDeps, alice: Actor, arguments: dict[str, Any], expected: str
) -> None:
    task = calc.tasks.start("bad input", alice)
    result = await call(calc, "run_tests", task_id=task.id, **arguments)
    assert result.is_error and expected in result.content[0].text
    assert [e.action for e in calc.tasks.store.events(task.id)] == ["created"]
    runs = calc.settings.state_path / "test-runs"
    assert not runs.exists() or not [p for p in runs.iterdir() if len(p.name) == 12]


async def test_the_test_command_comes_from_the_base_commit_not_the_change(calc: ServerDeps, alice: Actor) -> None:
    task = calc.tasks.start("make the tests pass the easy way", alice)
    blocks = [EditBlock(path="shipway.toml", content='[test]\ncommand = "true"\n')]
    assert calc.workspaces.edit(task.id, agent(), blocks=blocks).status == "applied"
    report = await run_tests(calc, task_id=task.id, selection="full", baseline=False)
    assert report.framework == "pytest" and report.status == "failed"


async def test_a_configured_command_with_junit_output_is_reported_per_test(tmp_path: Path, alice: Actor) -> None:
    repo = sample_repo("pytest-sample", tmp_path / "calc")
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider tests/test_arith.py --junitxml=build/report.xml"
    commit_file(repo, "shipway.toml", f'[test]\ncommand = "{command}"\njunit = ["build/*.xml"]\n')
    deps = open_sample(repo)
    task = deps.tasks.start("custom", alice)
    report = await run_tests(deps, task_id=task.id, selection="full")
    assert report.framework == "command" and report.per_test and report.totals.passed == 3
    assert report.status == "passed"


async def test_a_run_over_the_time_limit_is_an_error_that_says_so(tmp_path: Path, alice: Actor) -> None:
    repo = sample_repo("pytest-sample", tmp_path / "calc")
    commit_file(repo, "tests/test_slow.py", "import time\n\n\ndef test_slow() -> None:\n    time.sleep(60)\n")
    deps = open_sample(repo, test_timeout_s=3)
    task = deps.tasks.start("slow", alice)
    report = await run_tests(deps, task_id=task.id, selection="paths", paths=["tests/test_slow.py"])
    assert report.status == "error" and report.timed_out
    assert report.reason is not None and "timed out after 3 s" in report.reason


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on the host's loopback that accepts and closes connections."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


def connect_script(port: int) -> str:
    return f"python3 -c \\\"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\\\""


async def test_setup_gets_the_network_only_when_the_policy_allows_it_and_tests_never_do(
    tmp_path: Path, alice: Actor, listener: int
) -> None:
    repo = sample_repo("pytest-sample", tmp_path / "calc")
    commit_file(repo, "shipway.toml", f'[test]\nsetup = "{connect_script(listener)}"\n')
    probe = (
        "import socket\n\nimport pytest\n\n\ndef test_reaches_the_host() -> None:\n"
        f"    with pytest.raises(OSError):\n        socket.create_connection(('127.0.0.1', {listener}), 2)\n"
    )
    commit_file(repo, "tests/test_network.py", probe)

    closed = open_sample(repo)
    report = await run_tests(closed, task_id=closed.tasks.start("no net", alice).id, selection="full")
    assert report.status == "error" and report.setup is not None and not report.setup.network
    assert report.setup.exit_code != 0 and "SHIPWAY_TEST_SETUP_NETWORK=1" in (report.reason or "")
    assert report.totals.total == 0, "no test runs after a failed setup"

    opened = open_sample(repo, test_setup_network=True)
    task = opened.tasks.start("net for setup", alice)
    report = await run_tests(opened, task_id=task.id, selection="paths", paths=["tests/test_network.py"])
    assert report.setup is not None and report.setup.network and report.setup.exit_code == 0
    assert report.status == "passed", "the test itself could not reach the host"
    setup_events = [e for e in opened.tasks.store.events(task.id) if e.action == "test_setup"]
    assert len(setup_events) == 1 and setup_events[0].payload["network"] is True
    again = await run_tests(opened, task_id=task.id, selection="paths", paths=["tests/test_network.py"])
    assert again.setup is not None and again.setup.cached, "setup runs again only when dependency files change"


def test_cli_exit_codes_are_0_passed_1_failed_2_could_not_run(tmp_path: Path) -> None:
    sample = sample_repo("pytest-sample", tmp_path / "calc")
    env = {"SHIPWAY_TEST_PYTHON": sys.executable}
    failing = shipway("test", "run", "--repo", str(sample), env=env)
    assert failing.returncode == 1, failing.stderr
    assert failing.stdout.startswith("FAILED  6 passed, 1 failed, 2 errors, 3 skipped")
    assert "tests/test_text.py::test_slug_keeps_unicode_letters  tests/test_text.py:13" in failing.stdout

    passing = shipway("test", "run", "--repo", str(sample), "--path", "tests/test_arith.py", "--json", env=env)
    assert passing.returncode == 0, passing.stderr
    assert TestReport.model_validate(json.loads(passing.stdout)).totals.passed == 3

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to test\n")
    unrunnable = shipway("test", "run", "--repo", str(empty), env=env)
    assert unrunnable.returncode == 2
    assert "tests could not run: no test setup found" in unrunnable.stderr and "[test]" in unrunnable.stderr


def test_cli_compares_uncommitted_changes_with_head(tmp_path: Path) -> None:
    sample = sample_repo("pytest-sample", tmp_path / "calc")
    (sample / "calc" / "arith.py").write_text(
        "def add(a, b):\n    return a * b + 1\n\n\ndef mean(v):\n    return sum(v) / len(v)\n"
    )
    result = shipway("test", "run", "--repo", str(sample), "--selection", "affected", "--json",
                     env={"SHIPWAY_TEST_PYTHON": sys.executable})  # fmt: skip
    report = TestReport.model_validate(json.loads(result.stdout))
    assert result.returncode == 1 and report.dirty
    assert report.selected == ["tests/test_arith.py", "tests/test_stats.py"]
    assert report.baseline is not None and set(report.baseline.newly_failing) == ADD_TESTS
    assert git(sample, "status", "--porcelain") == "M calc/arith.py", "the run left nothing behind in the checkout"
