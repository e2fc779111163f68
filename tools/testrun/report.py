"""What a test run reports: per-test outcomes, the failures in detail, and the baseline diff.

`TestReport` is the contract shared by the `run_tests` tool, `shipway test run --json`, the
CI gate and the PR body; docs/testing.md documents every field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["passed", "failed", "error", "skipped"]
Phase = Literal["call", "setup", "teardown", "collection"]
Selection = Literal["affected", "full", "paths"]
RunStatus = Literal["passed", "failed", "error"]

MAX_FAILURES = 50
MAX_IDS = 200
TRACEBACK_LINES = 30
TRACEBACK_CHARS = 3_000
MESSAGE_CHARS = 500


class CaseResult(BaseModel):
    """One test's outcome, as parsed from the framework's report."""

    id: str = Field(description="Test id as the framework names it, e.g. tests/test_x.py::TestA::test_b[1]")
    outcome: Outcome
    phase: Phase = "call"
    file: str | None = Field(default=None, description="Repo-relative file of the test, when known")
    line: int | None = Field(default=None, description="Line of the failure (or of the test), 1-based")
    message: str | None = None
    traceback: str | None = None
    duration_ms: int = 0


class Totals(BaseModel):
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    total: int = 0

    @classmethod
    def of(cls, cases: list[CaseResult]) -> Totals:
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for case in cases:
            counts[case.outcome] += 1
        return cls(passed=counts["passed"], failed=counts["failed"], errors=counts["error"],
                   skipped=counts["skipped"], total=len(cases))  # fmt: skip


class FailedTest(BaseModel):
    """A failing or erroring test, with where and why."""

    id: str
    outcome: Literal["failed", "error"]
    phase: Phase = Field(description="collection: the test file could not be imported or built")
    file: str | None = None
    line: int | None = Field(default=None, description="Where it failed (the last frame in the test's file)")
    message: str | None = Field(default=None, description="The assertion or exception, first lines")
    traceback: str | None = Field(default=None, description="Trimmed to the last frames")
    versus_base: Literal["new", "still_failing", "new_test"] | None = Field(
        default=None,
        description="new: passed on the base commit; still_failing: failed there too; new_test: not on the base",
    )


class BaselineDiff(BaseModel):
    """The same selection on the task's base commit, compared test by test."""

    commit: str
    cached: bool = Field(description="The base results came from the cache (keyed by commit SHA)")
    newly_failing: list[str] = Field(default_factory=list, description="Passed (or absent) on the base, fail now")
    newly_passing: list[str] = Field(default_factory=list, description="Failed on the base, pass now")
    still_failing: list[str] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Why the base could not be compared, if it could not")


class SetupResult(BaseModel):
    """The dependency-install step that ran before the tests (the only one that may use the network)."""

    command: str
    exit_code: int
    network: bool
    duration_ms: int
    cached: bool = Field(description="Skipped: the same setup already ran for these dependency files")
    log_tail: str = ""


class TestReport(BaseModel):
    """The structured result of one test run."""

    __test__ = False  # not a pytest class, despite the name

    run_id: str
    task_id: str | None = None
    commit: str | None = Field(default=None, description="HEAD of the tested tree")
    dirty: bool = Field(default=False, description="The tree had uncommitted changes when tested")
    framework: str
    command: str = Field(description="What ran in the sandbox")
    selection: Selection
    selected: list[str] = Field(default_factory=list, description="Paths or ids run; empty means the whole suite")
    selection_reason: str = ""
    status: RunStatus = Field(description="passed: every selected test passed; error: the tests could not run")
    reason: str | None = Field(default=None, description="Why the tests could not run, and what to do")
    exit_code: int | None = None
    timed_out: bool = False
    duration_ms: int = 0
    totals: Totals = Field(default_factory=Totals)
    per_test: bool = Field(default=True, description="False when the framework gives only an exit code")
    failures: list[FailedTest] = Field(default_factory=list)
    failures_omitted: int = 0
    baseline: BaselineDiff | None = None
    setup: SetupResult | None = None
    log_uri: str = Field(default="", description="The full log, as an MCP resource")
    log_tail: str = Field(default="", description="End of the log when there are no per-test results")
    started_at: datetime | None = None


def trim_traceback(text: str | None) -> str | None:
    """The last frames of a traceback, within TRACEBACK_LINES lines and TRACEBACK_CHARS characters."""
    if not text:
        return None
    lines = text.strip("\n").splitlines()
    if len(lines) > TRACEBACK_LINES:
        lines = [f"... {len(lines) - TRACEBACK_LINES} earlier lines ...", *lines[-TRACEBACK_LINES:]]
    out = "\n".join(lines)
    return out if len(out) <= TRACEBACK_CHARS else "..." + out[-TRACEBACK_CHARS:]


def trim_message(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def tail(text: str, chars: int = 2_000) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]
