"""Jest's `--json` report into `CaseResult`s; ids are `file > describe > test`, like other JUnit suites."""

from __future__ import annotations

import json
import re
from typing import Any

from tools.testrun.junit import MAX_XML_BYTES, ReportUnreadable, relative_to_workdir
from tools.testrun.report import CaseResult, Outcome, trim_message, trim_traceback

_STATUS: dict[str, Outcome] = {"passed": "passed", "failed": "failed", "pending": "skipped", "skipped": "skipped",
                               "todo": "skipped", "disabled": "skipped", "focused": "passed"}  # fmt: skip
_FRAME = re.compile(r"\((?P<path>/[^\s():]+\.[cm]?[jt]sx?):(?P<line>\d+):\d+\)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_jest_json(data: bytes, workdir: str) -> list[CaseResult]:
    if len(data) > MAX_XML_BYTES:
        raise ReportUnreadable(f"the jest report is {len(data):,} bytes; the limit is {MAX_XML_BYTES:,}")
    try:
        report = json.loads(data)
    except ValueError as exc:
        raise ReportUnreadable(f"the jest report is not JSON: {exc}") from exc
    if not isinstance(report, dict) or not isinstance(report.get("testResults"), list):
        raise ReportUnreadable("the jest report has no testResults list")
    cases: list[CaseResult] = []
    for suite in report["testResults"]:
        if isinstance(suite, dict):
            cases += _suite_cases(suite, workdir)
    return cases


def _suite_cases(suite: dict[str, Any], workdir: str) -> list[CaseResult]:
    file = relative_to_workdir(str(suite.get("name", "")), workdir) or str(suite.get("name", ""))
    results = [r for r in suite.get("assertionResults") or [] if isinstance(r, dict)]
    if not results and suite.get("status") == "failed":  # the file itself failed to load
        text = _ANSI.sub("", str(suite.get("message") or ""))
        lines = [line.strip() for line in text.splitlines() if line.strip() and "●" not in line]
        return [CaseResult(id=file, outcome="error", phase="collection", file=file, line=_line(text, file, workdir),
                           message=trim_message(lines[0] if lines else "the test file failed to run"),
                           traceback=trim_traceback(text))]  # fmt: skip
    return [_case(result, file, workdir) for result in results]


def _case(result: dict[str, Any], file: str, workdir: str) -> CaseResult:
    outcome = _STATUS.get(str(result.get("status")), "skipped")
    names = [str(t) for t in result.get("ancestorTitles") or []] + [str(result.get("title", ""))]
    text = _ANSI.sub("", "\n".join(str(m) for m in result.get("failureMessages") or []))
    failed = outcome == "failed"
    return CaseResult(
        id=" > ".join([file, *names]),
        outcome=outcome,
        file=file,
        line=_line(text, file, workdir) if failed else None,
        message=trim_message(text.split("\n    at ", 1)[0]) if failed else None,
        traceback=trim_traceback(text) if failed else None,
        duration_ms=int(result.get("duration") or 0),
    )


def _line(text: str, file: str, workdir: str) -> int | None:
    for match in _FRAME.finditer(text):
        if relative_to_workdir(match["path"], workdir) == file:
            return int(match["line"])
    found = re.search(rf"{re.escape(file)}:(\d+)", text)
    return int(found[1]) if found else None
