"""The node:test, Go and cargo runners end to end in the sandbox, where those toolchains exist."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.tasks.model import Actor
from tests.helpers.gitrepo import git
from tests.helpers.samples import sample_repo
from tests.test_sandbox_tool import needs_bwrap
from tools.testrun.report import TestReport

pytestmark = needs_bwrap

CRATE = {
    "Cargo.toml": '[package]\nname = "cs"\nversion = "0.1.0"\nedition = "2021"\n',
    "src/lib.rs": """\
pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_works() {
        assert_eq!(add(2, 2), 4);
    }

    #[test]
    fn it_fails() {
        assert_eq!(add(2, 2), 5, "math is hard");
    }

    #[test]
    #[ignore]
    fn slow() {}
}
""",
}


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed; its runner is not tested")


@pytest.fixture
def opened() -> Iterator[list[ServerDeps]]:
    made: list[ServerDeps] = []
    yield made
    for deps in made:
        deps.tasks.store.close()


def run_full(repo: Path, opened: list[ServerDeps], alice: Actor) -> tuple[ServerDeps, TestReport]:
    deps = open_deps(load_settings(repo=repo))
    opened.append(deps)
    task = deps.tasks.start("run the tests", alice)
    return deps, deps.tests.run_task(task.id, "full", None, alice)


@needs("node")
def test_node_test_scripts_report_each_test_through_junit(
    tmp_path: Path, opened: list[ServerDeps], alice: Actor
) -> None:
    _, report = run_full(sample_repo("node-sample", tmp_path / "node"), opened, alice)
    assert report.framework == "node" and report.per_test
    assert report.totals.model_dump() == {"passed": 2, "failed": 1, "errors": 0, "skipped": 1, "total": 4}
    [failure] = report.failures
    assert failure.id == "formats negative amounts with the sign first"
    assert (failure.file, failure.line) == ("test/price.test.js", 15)


@needs("go")
def test_go_tests_report_each_test_from_the_json_stream(tmp_path: Path, opened: list[ServerDeps], alice: Actor) -> None:
    _, report = run_full(sample_repo("go-sample", tmp_path / "go"), opened, alice)
    assert report.framework == "go" and report.status == "failed"
    assert report.totals.model_dump() == {"passed": 2, "failed": 1, "errors": 0, "skipped": 1, "total": 4}
    [failure] = report.failures
    assert failure.id == "example.com/gosample/textutil::TestTitleLowersTheRest"
    assert (failure.file, failure.line) == ("textutil/words_test.go", 20)


@needs("cargo")
def test_cargo_tests_report_each_test_with_the_panic_location(
    tmp_path: Path, opened: list[ServerDeps], alice: Actor
) -> None:
    repo = tmp_path / "crate"
    for name, text in CRATE.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "crate")
    deps, report = run_full(repo, opened, alice)
    assert report.framework == "cargo", report.reason
    assert report.totals.model_dump() == {"passed": 1, "failed": 1, "errors": 0, "skipped": 1, "total": 3}
    [failure] = report.failures
    assert failure.id == "src/lib.rs::tests::it_fails" and (failure.file, failure.line) == ("src/lib.rs", 16)
    assert "math is hard" in (failure.message or "")
    worktree = deps.settings.state_path / "worktrees" / report.task_id
    assert not (worktree / "target").exists(), "build output goes to the task's cache, not the tree"
