"""`go test -json` event streams into `CaseResult`s; ids are `<package>::<Test>`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from tools.testrun.report import CaseResult, Outcome, trim_message, trim_traceback

_LOCATION = re.compile(r"^\s+(?P<file>[\w./-]+\.go):(?P<line>\d+): (?P<message>.*)$")
_BUILD_FAILED = re.compile(r"^FAIL\t(?P<package>\S+) \[(?:build|setup) failed\]", re.MULTILINE)
_COMPILER_LOCATION = re.compile(r"^(?P<file>[\w./-]+\.go):(?P<line>\d+):", re.MULTILINE)
_ACTIONS: dict[str, Outcome] = {"pass": "passed", "fail": "failed", "skip": "skipped"}


@dataclass
class _Test:
    package: str
    name: str
    outcome: Outcome | None = None
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)


def package_dir(package: str, module: str | None) -> str:
    """Repo-relative directory of a package of `module` ('' for the module root)."""
    if module and (package == module or package.startswith(module + "/")):
        return package[len(module) + 1 :]
    return ""


def parse_go_json(stream: str, module: str | None, stderr: str = "") -> list[CaseResult]:
    """Cases from go test -json's stdout; compiler errors (stderr before Go 1.24) explain build failures."""
    tests: dict[tuple[str, str], _Test] = {}
    package_fail: dict[str, list[str]] = {}
    built: list[str] = []  # Go >= 1.24 sends compiler output as build-output events
    for event in _events(stream):
        package, name, action = str(event.get("Package", "")), event.get("Test"), event.get("Action")
        if action == "build-output":
            built.append(str(event.get("Output", "")))
            continue
        if not name:
            if action == "output":
                package_fail.setdefault(package, []).append(str(event.get("Output", "")))
            elif action == "fail":
                package_fail.setdefault(package, []).append("")
            continue
        test = tests.setdefault((package, str(name)), _Test(package, str(name)))
        if action == "output":
            test.output.append(str(event.get("Output", "")))
        elif action in _ACTIONS:
            test.outcome = _ACTIONS[action]
            test.seconds = float(str(event.get("Elapsed") or 0))
    cases = [_case(test, module) for test in tests.values() if test.outcome is not None]
    for match in _BUILD_FAILED.finditer(stream):  # Go < 1.24 prints these as plain text
        package_fail.setdefault(match["package"], []).append("")
    compiler = stderr + "".join(built)
    cases += _package_errors(package_fail, {t.package for t in tests.values()}, compiler, module)
    return cases


def _events(stream: str) -> list[dict[str, object]]:
    events = []
    for line in stream.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def _case(test: _Test, module: str | None) -> CaseResult:
    assert test.outcome is not None
    failed = test.outcome == "failed"
    where = [m for m in map(_LOCATION.match, test.output) if m]
    directory = package_dir(test.package, module)
    file = line = message = None
    if where:
        first = where[0]
        file = f"{directory}/{first['file']}" if directory else first["file"]
        line, message = int(first["line"]), first["message"]
    body = "".join(o for o in test.output if not o.startswith(("=== RUN", "=== PAUSE", "=== CONT")))
    return CaseResult(
        id=f"{test.package}::{test.name}",
        outcome=test.outcome,
        file=file,
        line=line if failed or test.outcome == "skipped" else None,
        message=trim_message(message) if test.outcome != "passed" else None,
        traceback=trim_traceback(body) if failed else None,
        duration_ms=round(test.seconds * 1000),
    )


def _package_errors(
    fails: dict[str, list[str]], with_tests: set[str], stderr: str, module: str | None
) -> list[CaseResult]:
    """A package that failed without any test failing did not build (or crashed in init)."""
    errors = []
    for package, output in fails.items():
        if "" not in output or package in with_tests:
            continue
        text = "".join(output).strip()
        ours = [line for line in stderr.splitlines() if line.startswith(f"# {package}")]
        detail = _compiler_output(stderr, package) if ours else text
        where = _COMPILER_LOCATION.search(detail)
        errors.append(
            CaseResult(
                id=package,
                outcome="error",
                phase="collection",
                file=where["file"] if where else package_dir(package, module) or None,
                line=int(where["line"]) if where else None,
                message=trim_message(detail.splitlines()[-1] if detail else "package failed to build"),
                traceback=trim_traceback(detail),
            )
        )
    return errors


def _compiler_output(stderr: str, package: str) -> str:
    """The block of compiler messages go printed under `# <package>`."""
    lines, inside = [], False
    for line in stderr.splitlines():
        if line.startswith("# "):
            inside = line.startswith(f"# {package}")
            continue
        if inside:
            lines.append(line)
    return "\n".join(lines[:40])
