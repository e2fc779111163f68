"""Which command each framework runs, and reading vitest's JUnit and jest's JSON (recorded from real runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.base import ExecResult
from tools.testrun.detect import TestSpec
from tools.testrun.frameworks import JEST_FILE, JUNIT_FILE, collect, node_invocation
from tools.testrun.jest_json import parse_jest_json
from tools.testrun.junit import ReportUnreadable, parse_junit

FIXTURES = Path(__file__).parent / "fixtures"
OUT = Path("/out")


def exec_result(exit_code: int = 1, stdout: str = "", stderr: str = "") -> ExecResult:
    return ExecResult(exit_code=exit_code, stdout=stdout, stderr=stderr, truncated=False, timed_out=False,
                      duration_ms=5, sandboxed=True)  # fmt: skip


@pytest.mark.parametrize(
    ("script", "argv", "reader"),
    [
        ("node --test", ["node", "--test", "--test-reporter=spec", "--test-reporter-destination=stdout",
                         "--test-reporter=junit", "--test-reporter-destination=/out/junit.xml", "t/a.test.js"],
         "junit"),
        ("vitest run", ["node_modules/.bin/vitest", "run", "--reporter=default", "--reporter=junit",
                        "--outputFile.junit=/out/junit.xml", "t/a.test.js"], "junit"),
        ("vitest --coverage", ["node_modules/.bin/vitest", "run", "--coverage", "--reporter=default",
                               "--reporter=junit", "--outputFile.junit=/out/junit.xml", "t/a.test.js"], "junit"),
        ("jest --runInBand", ["node_modules/.bin/jest", "--runInBand", "--ci", "--json",
                              "--outputFile=/out/jest.json", "t/a.test.js"], "jest"),
        ("mocha", ["npm", "test", "--silent"], "none"),
        ("jest && eslint .", ["npm", "test", "--silent"], "none"),
    ],
)  # fmt: skip
def test_node_scripts_are_rerun_with_a_machine_readable_reporter_when_known(
    script: str, argv: list[str], reader: str
) -> None:
    call = node_invocation(script, ["t/a.test.js"], OUT)
    assert call.argv == argv and call.reader == reader
    if reader == "none":
        assert "no per-test results" in call.note


def test_vitest_junit_names_cases_by_file_and_suite_and_finds_the_failing_line() -> None:
    cases = parse_junit((FIXTURES / "vitest-junit.xml").read_bytes(), "suites", "/w/jsr")
    assert [(c.id, c.outcome, c.file, c.line) for c in cases] == [
        ("test/price.test.js > price > adds tax and rounds to a cent", "passed", None, None),
        (
            "test/price.test.js > price > formats negative amounts with the sign first",
            "failed",
            "test/price.test.js",
            9,
        ),
        ("test/price.test.js > price > rounds half cents away from zero", "skipped", None, None),
    ]
    assert "expected '$-5.00' to be '-$5.00'" in (cases[1].message or "")


def test_jest_json_gives_each_test_and_a_suite_that_failed_to_load() -> None:
    cases = parse_jest_json((FIXTURES / "jest.json").read_bytes(), "/w/jestr")
    assert [(c.id, c.outcome, c.phase, c.file, c.line) for c in cases] == [
        ("test/price.test.js > price > adds tax and rounds to a cent", "passed", "call", "test/price.test.js", None),
        ("test/price.test.js > price > formats negative amounts with the sign first", "failed", "call",
         "test/price.test.js", 8),
        ("test/price.test.js > price > rounds half cents away from zero", "skipped", "call", "test/price.test.js",
         None),
        ("test/broken.test.js", "error", "collection", "test/broken.test.js", 1),
    ]  # fmt: skip
    assert cases[1].message is not None and 'Expected: "-$5.00"' in cases[1].message
    assert cases[1].traceback is not None and "node_modules" in cases[1].traceback
    assert cases[3].message == "Cannot find module './missing-module' from 'test/broken.test.js'"


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'{"testResults": 3}'])
def test_a_jest_report_that_is_not_one_is_refused(data: bytes) -> None:
    with pytest.raises(ReportUnreadable):
        parse_jest_json(data, "/w")


def test_collect_reads_the_file_its_reader_names_and_says_when_it_is_missing(tmp_path: Path) -> None:
    spec = TestSpec(framework="node", source="package.json", node_script="jest")
    call = node_invocation("jest", None, tmp_path)
    missing = collect(spec, call, exec_result(1, stderr="jest: not a JS project"), tmp_path, Path("/w/jestr"))
    assert missing.cases is None and missing.problem and "left no test results (exit 1)" in missing.problem
    (tmp_path / JEST_FILE).write_bytes((FIXTURES / "jest.json").read_bytes())
    found = collect(spec, call, exec_result(1), tmp_path, Path("/w/jestr"))
    assert found.cases is not None and len(found.cases) == 4 and found.problem is None
    (tmp_path / JUNIT_FILE).write_text("<testsuites/>")  # a JUnit file is not what jest's reader reads
    assert collect(spec, call, exec_result(1), tmp_path, Path("/w/jestr")).cases == found.cases


def test_an_exit_code_only_runner_reports_no_cases_and_no_problem(tmp_path: Path) -> None:
    spec = TestSpec(framework="make", source="Makefile")
    call = node_invocation("mocha", None, tmp_path)
    collected = collect(spec, call, exec_result(2, stdout="1 failing"), tmp_path, tmp_path)
    assert collected.cases is None and collected.problem is None
