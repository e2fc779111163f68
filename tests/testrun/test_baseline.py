"""Comparing a run with the base commit: verdicts per failing test and cache units."""

from __future__ import annotations

import pytest

from tools.testrun.baseline import WHOLE, by_unit, compare, mark, unit_of, units_of
from tools.testrun.report import MAX_IDS, CaseResult, FailedTest, Outcome


def case(test_id: str, outcome: Outcome, phase: str = "call") -> CaseResult:
    return CaseResult.model_validate({"id": test_id, "outcome": outcome, "phase": phase})


BASE: dict[str, dict[str, Outcome]] = {
    "tests/test_a.py": {
        "tests/test_a.py::test_was_passing": "passed",
        "tests/test_a.py::test_was_failing": "failed",
        "tests/test_a.py::test_was_erroring": "error",
        "tests/test_a.py::test_gets_fixed": "failed",
        "tests/test_a.py::test_was_skipped": "skipped",
    },
    "tests/test_b.py": {"tests/test_b.py::test_fine": "passed"},
    "tests/test_c.py": {},
}


def test_compare_classifies_each_failure_against_the_base() -> None:
    current = [
        case("tests/test_a.py::test_was_passing", "failed"),
        case("tests/test_a.py::test_was_failing", "failed"),
        case("tests/test_a.py::test_was_erroring", "failed"),
        case("tests/test_a.py::test_gets_fixed", "passed"),
        case("tests/test_a.py::test_was_skipped", "error"),
        case("tests/test_a.py::test_brand_new", "failed"),
        case("tests/test_c.py::test_new_file", "error", "setup"),
        case("tests/test_b.py::test_fine", "passed"),
        case("tests/test_a.py::test_new_and_passing", "passed"),
        case("tests/test_a.py::test_new_and_skipped", "skipped"),
    ]
    diff, verdicts = compare("abc123", True, current, BASE)
    assert verdicts == {
        "tests/test_a.py::test_was_passing": "new",
        "tests/test_a.py::test_was_failing": "still_failing",
        "tests/test_a.py::test_was_erroring": "still_failing",
        "tests/test_a.py::test_was_skipped": "new",
        "tests/test_a.py::test_brand_new": "new_test",
        "tests/test_c.py::test_new_file": "new_test",
    }
    assert (diff.commit, diff.cached, diff.error) == ("abc123", True, None)
    assert diff.newly_failing == [
        "tests/test_a.py::test_was_passing",
        "tests/test_a.py::test_was_skipped",
        "tests/test_a.py::test_brand_new",
        "tests/test_c.py::test_new_file",
    ]
    assert diff.still_failing == ["tests/test_a.py::test_was_failing", "tests/test_a.py::test_was_erroring"]
    assert diff.newly_passing == ["tests/test_a.py::test_gets_fixed"]


def test_a_collection_error_in_a_file_whose_tests_passed_at_base_is_new() -> None:
    current = [case("tests/test_b.py", "error", "collection"), case("tests/test_d.py", "error", "collection")]
    diff, verdicts = compare("abc123", False, current, BASE)
    assert verdicts == {"tests/test_b.py": "new", "tests/test_d.py": "new_test"}
    assert diff.newly_failing == ["tests/test_b.py", "tests/test_d.py"]
    assert diff.still_failing == []


def test_a_collection_error_that_was_there_at_base_is_still_failing() -> None:
    base: dict[str, dict[str, Outcome]] = {"tests/test_x.py": {"tests/test_x.py": "error"}}
    diff, verdicts = compare("c0ffee", True, [case("tests/test_x.py", "error", "collection")], base)
    assert verdicts == {"tests/test_x.py": "still_failing"}
    assert diff.still_failing == ["tests/test_x.py"]


def test_compare_caps_the_id_lists_but_judges_every_failure() -> None:
    current = [case(f"tests/test_many.py::test_{i}", "failed") for i in range(MAX_IDS + 25)]
    diff, verdicts = compare("abc", False, current, {})
    assert len(diff.newly_failing) == MAX_IDS
    assert len(verdicts) == MAX_IDS + 25
    assert set(verdicts.values()) == {"new_test"}


def test_mark_copies_the_verdicts_onto_the_failures() -> None:
    failures = [FailedTest(id="t::a", outcome="failed", phase="call"), FailedTest(id="t::b", outcome="error",
                                                                                 phase="setup")]  # fmt: skip
    marked = mark(failures, {"t::a": "new"})
    assert [(f.id, f.versus_base) for f in marked] == [("t::a", "new"), ("t::b", None)]
    assert failures[0].versus_base is None


@pytest.mark.parametrize(
    ("framework", "selected", "units"),
    [
        ("pytest", None, [WHOLE]),
        ("go", None, [WHOLE]),
        ("pytest", ["tests/test_b.py", "tests/test_a.py::test_x", "tests/test_b.py"],
         ["tests/test_a.py::test_x", "tests/test_b.py"]),
        ("go", ["./b/...", "./a/..."], ["./a/... ./b/..."]),
        ("cargo", ["slow"], ["slow"]),
    ],
)  # fmt: skip
def test_units_are_pytest_files_or_ids_and_one_selection_otherwise(
    framework: str, selected: list[str] | None, units: list[str]
) -> None:
    assert units_of(framework, selected) == units


def test_by_unit_files_each_pytest_case_under_its_file_or_node_id() -> None:
    units = ["tests/test_a.py", "tests/test_b.py::TestK"]
    cases = [
        case("tests/test_a.py::test_1", "passed"),
        case("tests/test_a.py", "error", "collection"),
        case("tests/test_b.py::TestK::test_2", "failed"),
        case("tests/test_b.py::TestOther::test_3", "passed"),
        case("tests/test_c.py::test_4", "passed"),
    ]
    assert by_unit("pytest", cases, units) == {
        "tests/test_a.py": {"tests/test_a.py::test_1": "passed", "tests/test_a.py": "error"},
        "tests/test_b.py::TestK": {"tests/test_b.py::TestK::test_2": "failed"},
    }


def test_by_unit_puts_everything_in_the_one_unit_for_other_frameworks_and_whole_runs() -> None:
    cases = [case("example.com/m::TestA", "passed"), case("example.com/m", "error", "collection")]
    assert by_unit("go", cases, ["./..."]) == {"./...": {"example.com/m::TestA": "passed", "example.com/m": "error"}}
    assert by_unit("pytest", [case("tests/test_a.py::t", "failed")], [WHOLE]) == {
        WHOLE: {"tests/test_a.py::t": "failed"}
    }
    assert unit_of("go", "x", []) is None


def test_a_directory_unit_collects_the_tests_under_it() -> None:
    units = units_of("pytest", ["tests/unit"])
    cases = [case("tests/unit/test_a.py::test_x", "failed")]
    assert by_unit("pytest", cases, units) == {"tests/unit": {"tests/unit/test_a.py::test_x": "failed"}}
