"""Comparing a run with the same selection on the base commit, test by test."""

from __future__ import annotations

from collections.abc import Mapping

from tools.testrun.report import MAX_IDS, BaselineDiff, CaseResult, FailedTest, Outcome

FAILING = ("failed", "error")
WHOLE = "*"


def units_of(framework: str, selected: list[str] | None) -> list[str]:
    """Cache units for a selection: each pytest file (or node id) on its own, else the selection as one."""
    if selected is None:
        return [WHOLE]
    if framework == "pytest":
        return sorted(set(selected))
    return [" ".join(sorted(selected))]


def unit_of(framework: str, test_id: str, units: list[str]) -> str | None:
    if framework != "pytest" or units == [WHOLE]:
        return units[0] if units else None
    path = test_id.split("::", 1)[0]
    return next((u for u in units if u in (test_id, path) or test_id.startswith(u + "::")
                 or path.startswith(u.rstrip("/") + "/") or u in (".", "")), None)  # fmt: skip


def by_unit(framework: str, cases: list[CaseResult], units: list[str]) -> dict[str, dict[str, Outcome]]:
    found: dict[str, dict[str, Outcome]] = {unit: {} for unit in units}
    for case in cases:
        unit = unit_of(framework, case.id, units)
        if unit is not None:
            found[unit][case.id] = case.outcome
    return found


def compare(
    commit: str, cached: bool, current: list[CaseResult], base: Mapping[str, Mapping[str, Outcome]]
) -> tuple[BaselineDiff, dict[str, str]]:
    """The diff, and for each failing id whether it is new, still failing or a new test."""
    outcomes: dict[str, Outcome] = {}
    passing_files: set[str] = set()
    for unit in base.values():
        for test_id, outcome in unit.items():
            outcomes[test_id] = outcome
            if outcome == "passed":
                passing_files.add(test_id.split("::", 1)[0])
    verdicts: dict[str, str] = {}
    diff = BaselineDiff(commit=commit, cached=cached)
    for case in current:
        before = outcomes.get(case.id)
        if case.outcome in FAILING:
            verdict = verdicts[case.id] = _verdict(before, case.id in passing_files)
            if verdict == "still_failing":
                diff.still_failing.append(case.id)
            else:
                diff.newly_failing.append(case.id)
        elif case.outcome == "passed" and before in FAILING:
            diff.newly_passing.append(case.id)
    for name in ("newly_failing", "newly_passing", "still_failing"):
        setattr(diff, name, getattr(diff, name)[:MAX_IDS])
    return diff, verdicts


def _verdict(before: Outcome | None, file_passed_at_base: bool) -> str:
    if before in FAILING:
        return "still_failing"
    # a file whose tests passed at base but that no longer imports is a new failure, not a new test
    return "new" if before is not None or file_passed_at_base else "new_test"


def mark(failures: list[FailedTest], verdicts: dict[str, str]) -> list[FailedTest]:
    return [f.model_copy(update={"versus_base": verdicts.get(f.id)}) for f in failures]
