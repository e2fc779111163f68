"""`cargo test` output into `CaseResult`s; ids are `<target>::<path::to::test>`.

cargo has no stable machine-readable test output (libtest's JSON is nightly-only), so this
reads the text libtest prints, which has been stable for years.
"""

from __future__ import annotations

import re

from tools.testrun.report import CaseResult, Outcome, trim_message, trim_traceback

_RUNNING = re.compile(r"^\s*Running (?:unittests )?(?P<target>\S+)")
_DOCTESTS = re.compile(r"^\s*Doc-tests (?P<crate>\S+)")
_RESULT = re.compile(r"^test (?P<name>\S+(?: - .*?)?) \.\.\. (?P<status>ok|FAILED|ignored)\b")
_OUTPUT_HEADER = re.compile(r"^---- (?P<name>.+) stdout ----$")
_PANIC = re.compile(r"panicked at (?:'(?P<old>.*)', )?(?P<file>[^\s:]+\.rs):(?P<line>\d+):\d+:?")
_STATUS: dict[str, Outcome] = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}


def parse_cargo_output(text: str) -> list[CaseResult]:
    target = ""
    results: list[tuple[str, str, Outcome]] = []
    outputs: dict[tuple[str, str], list[str]] = {}
    capturing: tuple[str, str] | None = None
    for line in text.splitlines():
        if match := _RUNNING.match(line):
            target, capturing = match["target"], None
        elif match := _DOCTESTS.match(line):
            target, capturing = f"doc:{match['crate']}", None
        elif match := _RESULT.match(line):
            results.append((target, match["name"], _STATUS[match["status"]]))
        elif match := _OUTPUT_HEADER.match(line):
            capturing = (target, match["name"])
            outputs[capturing] = []
        elif capturing is not None:
            if line.strip() in ("failures:", "successes:") or line.startswith("test result:"):
                capturing = None
            else:
                outputs[capturing].append(line)
    return [_case(t, name, outcome, outputs.get((t, name), [])) for t, name, outcome in results]


def _case(target: str, name: str, outcome: Outcome, output: list[str]) -> CaseResult:
    body = "\n".join(output).strip()
    panic = _PANIC.search(body)
    message = None
    if panic:
        after = body[panic.end() :].strip().splitlines()
        message = panic["old"] or (after[0] if after else None)
    return CaseResult(
        id=f"{target}::{name}" if target else name,
        outcome=outcome,
        file=panic["file"] if panic else None,
        line=int(panic["line"]) if panic else None,
        message=trim_message(message) if outcome == "failed" else None,
        traceback=trim_traceback(body) if outcome == "failed" and body else None,
    )
