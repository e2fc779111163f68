"""JUnit XML, as pytest, node:test, vitest and most CI tools write it, into `CaseResult`s.

The XML comes out of the sandbox, so it is untrusted: defusedxml refuses entity tricks and
the size is capped before parsing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from tools.testrun.report import CaseResult, Outcome, Phase, trim_message, trim_traceback

MAX_XML_BYTES = 64 << 20
IdStyle = Literal["pytest", "suites"]

# "tests/test_x.py:14: in test_y" (pytest --tb=short), "at f (file:///w/t.test.js:15:10)" (node)
_PY_FRAME = re.compile(r"^(?P<path>[^\s:][^:\n]*\.py):(?P<line>\d+):", re.MULTILINE)
_JS_FRAME = re.compile(r"(?:file://)?(?P<path>/?[\w@][\w./@-]*\.[cm]?[jt]sx?):(?P<line>\d+):\d+")


class ReportUnreadable(ValueError):
    """The report file exists but is not JUnit XML we can trust."""


@dataclass(frozen=True)
class _Raw:
    suites: tuple[str, ...]
    classname: str
    name: str
    file: str | None
    line: int | None
    outcome: Outcome
    message: str | None
    text: str | None
    seconds: float


def parse_junit(data: bytes, style: IdStyle, workdir: str) -> list[CaseResult]:
    """Every test case in `data`; ids in pytest's node-id form or as `suite > name`."""
    if len(data) > MAX_XML_BYTES:
        raise ReportUnreadable(f"the JUnit report is {len(data):,} bytes; the limit is {MAX_XML_BYTES:,}")
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise ReportUnreadable(f"the JUnit report is not valid XML: {exc}") from exc
    build = _pytest_case if style == "pytest" else _suite_case
    top = [root] if root.tag == "testsuite" else root  # one suite per file (Maven, Gradle) or a <testsuites> list
    return [build(raw, workdir) for raw in _cases(top, ())]


def _cases(element: Element | list[Element], suites: tuple[str, ...]) -> Iterator[_Raw]:
    for child in element:
        if child.tag == "testsuite":
            name = child.get("name", "")
            yield from _cases(child, (*suites, name) if name else suites)
        elif child.tag == "testcase":
            yield _raw_case(child, suites)


def _raw_case(case: Element, suites: tuple[str, ...]) -> _Raw:
    outcome: Outcome = "passed"
    message = text = None
    for tag, kind in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        found = case.find(tag)
        if found is not None:
            outcome = kind  # type: ignore[assignment]
            message, text = found.get("message"), found.text
            break
    line = case.get("line")
    return _Raw(
        suites=suites,
        classname=case.get("classname", ""),
        name=case.get("name", ""),
        file=case.get("file"),
        line=int(line) + 1 if line and line.isdigit() else None,  # pytest writes 0-based lines
        outcome=outcome,
        message=message,
        text=text,
        seconds=_seconds(case.get("time")),
    )


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value or 0))
    except ValueError:
        return 0.0


def _pytest_phase(raw: _Raw) -> Phase:
    message = raw.message or ""
    if raw.outcome == "error" and message == "collection failure":
        return "collection"
    if message.startswith("failed on setup"):
        return "setup"
    if message.startswith("failed on teardown"):
        return "teardown"
    return "call"


def pytest_node_id(file: str | None, classname: str, name: str) -> str:
    """pytest's node id from xunit1 attributes: tests/test_x.py::TestA::test_b[1]."""
    if not file:
        return f"{classname}::{name}" if classname else name
    module = file.removesuffix(".py").replace("/", ".")
    if not classname:  # a collection error names the module, not a test
        return file
    if classname == module or classname.startswith(module + "."):
        classes = classname[len(module) + 1 :].split(".") if classname != module else []
        return "::".join([file, *[c for c in classes if c], name])
    # `file` is where the test is defined (an inherited method); classname names the collecting module
    parts = classname.split(".")
    first_class = next((i for i, part in enumerate(parts) if part[:1].isupper()), len(parts))
    path = "/".join(parts[:first_class]) + ".py"
    return "::".join([path, *parts[first_class:], name])


def _exception_line(text: str | None) -> str | None:
    """The last `E   ...` line of a pytest traceback: the exception that ended it."""
    found = [line[1:].strip() for line in (text or "").splitlines() if line.startswith("E ")]
    return found[-1] if found else None


def _pytest_case(raw: _Raw, workdir: str) -> CaseResult:
    phase = _pytest_phase(raw)
    message = raw.message
    if phase == "collection":
        message = _exception_line(raw.text) or message
    line = raw.line
    if raw.outcome in ("failed", "error"):
        line = _last_frame(raw.text or "", _PY_FRAME, raw.file, workdir) or line
    return CaseResult(
        id=pytest_node_id(raw.file, raw.classname, raw.name),
        outcome=raw.outcome,
        phase=phase,
        file=raw.file,
        line=line,
        message=trim_message(message),
        traceback=trim_traceback(raw.text) if raw.outcome in ("failed", "error") else None,
        duration_ms=round(raw.seconds * 1000),
    )


def _suite_case(raw: _Raw, workdir: str) -> CaseResult:
    frame = _frame(raw.text or "", _JS_FRAME, workdir) if raw.outcome in ("failed", "error") else None
    file = raw.file or (frame[0] if frame else None)
    names = [*raw.suites, raw.name] if raw.suites else [raw.name]
    return CaseResult(
        id=" > ".join(n for n in names if n),
        outcome=raw.outcome,
        file=file,
        line=frame[1] if frame else raw.line,
        message=trim_message(raw.message),
        traceback=trim_traceback(raw.text) if raw.outcome in ("failed", "error") else None,
        duration_ms=round(raw.seconds * 1000),
    )


def relative_to_workdir(path: str, workdir: str) -> str | None:
    """`path` relative to the tested tree, or None when it lies outside (library code)."""
    if not path.startswith("/"):
        return path if ".." not in PurePosixPath(path).parts else None
    prefix = workdir.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _frame(text: str, pattern: re.Pattern[str], workdir: str) -> tuple[str, int] | None:
    """The first frame of `text` that lies inside the tested tree (JS stacks list innermost first)."""
    for match in pattern.finditer(text):
        path = relative_to_workdir(match["path"], workdir)
        if path is not None and "node_modules/" not in path:
            return path, int(match["line"])
    return None


def _last_frame(text: str, pattern: re.Pattern[str], file: str | None, workdir: str) -> int | None:
    """The line of the last frame in `file` (Python tracebacks list innermost last); else of the last frame."""
    frames = [(relative_to_workdir(m["path"], workdir), int(m["line"])) for m in pattern.finditer(text)]
    in_file = [line for path, line in frames if path == file]
    if in_file:
        return in_file[-1]
    inside = [line for path, line in frames if path is not None]
    return inside[-1] if inside and file is None else None
