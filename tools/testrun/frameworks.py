"""Per framework: the command that runs a selection, and how to read what it left behind.

Every command runs in the sandbox with the tested tree as its working directory. Reports are
written to `out`, a directory bound writable at the same path inside the sandbox, so nothing
lands in the tree.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox.base import ExecResult
from tools.testrun.cargo_text import parse_cargo_output
from tools.testrun.detect import TestSpec
from tools.testrun.go_json import parse_go_json
from tools.testrun.jest_json import parse_jest_json
from tools.testrun.junit import ReportUnreadable, parse_junit
from tools.testrun.report import CaseResult, tail

JUNIT_FILE = "junit.xml"
JEST_FILE = "jest.json"
# The project's own installs (after setup): never npx, which may try to download.
VITEST = "node_modules/.bin/vitest"
JEST = "node_modules/.bin/jest"
NO_PYTEST = "shipway: no Python interpreter with pytest"
NOT_FOUND = 127
# pytest's exit codes other than 0 (passed) and 1 (some failed)
PYTEST_EXIT = {2: "pytest was interrupted", 3: "pytest hit an internal error", 4: "pytest rejected its arguments",
               5: "no tests were collected"}  # fmt: skip
# Test runs have no network: tell the toolchains so they fail fast instead of trying.
OFFLINE_ENV = {"GOPROXY": "off", "GOTOOLCHAIN": "local", "CARGO_NET_OFFLINE": "true", "npm_config_offline": "true",
               "PIP_NO_INDEX": "1"}  # fmt: skip


Reader = Literal["pytest", "junit", "jest", "go", "cargo", "custom", "none"]
"""How per-test results are read: pytest's or another JUnit file in `out`, jest's JSON, the go
or cargo output, the JUnit files a custom command names, or none (exit code only)."""


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    shown: str
    reader: Reader
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Collected:
    cases: list[CaseResult] | None
    problem: str | None = None


def python_candidates(spec: TestSpec, configured: str | None) -> list[str]:
    """Interpreters to try for pytest, first that can import pytest wins."""
    found = [p for p in (spec.python, configured) if p]
    return [*found, ".venv/bin/python", "venv/bin/python", "python3", "python"]


def _pytest(spec: TestSpec, selected: list[str] | None, out: Path, tree: Path, pythons: list[str]) -> Invocation:
    args = ["-q", "-rN", "--tb=short", "--color=no", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
            f"--junitxml={out / JUNIT_FILE}", "--continue-on-collection-errors"]  # fmt: skip
    if selected:
        args += ["--", *selected]
    tried = " ".join(pythons)
    script = (
        f"for py in {' '.join(shlex.quote(p) for p in pythons)}; do "
        'case "$py" in */*) [ -x "$py" ] || continue ;; *) command -v "$py" >/dev/null 2>&1 || continue ;; esac; '
        """if "$py" -c 'import pytest' >/dev/null 2>&1; then echo "shipway: running pytest with $py" >&2; """
        'exec "$py" -m pytest "$@"; fi; done; '
        f"echo {shlex.quote(f'{NO_PYTEST} (tried: {tried})')} >&2; exit {NOT_FOUND}"
    )
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    if (tree / "src").is_dir():  # src layouts: the tree's code, not an editable install of the main checkout
        env["PYTHONPATH"] = str(tree / "src")
    return Invocation(["/bin/sh", "-c", script, "sh", *args], "python -m pytest " + shlex.join(args), "pytest", env)


def node_invocation(script: str | None, selected: list[str] | None, out: Path) -> Invocation:
    """node:test, vitest and jest scripts are re-run with a machine-readable reporter; any other runs as is."""
    tokens = shlex.split(script) if script and not any(c in script for c in "&|;<>$`") else []
    files = selected or []
    if len(tokens) >= 2 and tokens[0] == "node" and "--test" in tokens:
        at = tokens.index("--test") + 1
        reporters = ["--test-reporter=spec", "--test-reporter-destination=stdout",
                     "--test-reporter=junit", f"--test-reporter-destination={out / JUNIT_FILE}"]  # fmt: skip
        argv = [*tokens[:at], *reporters, *tokens[at:], *files]
        return Invocation(argv, shlex.join(argv), "junit")
    if tokens and tokens[0] == "vitest":
        rest = [t for t in tokens[1:] if t not in ("run", "--run")]
        argv = [VITEST, "run", *rest, "--reporter=default", "--reporter=junit",
                f"--outputFile.junit={out / JUNIT_FILE}", *files]  # fmt: skip
        return Invocation(argv, shlex.join(argv), "junit")
    if tokens and tokens[0] == "jest":
        argv = [JEST, *tokens[1:], "--ci", "--json", f"--outputFile={out / JEST_FILE}", *files]
        return Invocation(argv, shlex.join(argv), "jest")
    note = "npm test gives no per-test results; the whole script ran" if selected else ""
    return Invocation(["npm", "test", "--silent"], "npm test --silent", "none", note=note)


def invocation(spec: TestSpec, selected: list[str] | None, out: Path, tree: Path, python: str | None) -> Invocation:
    """The command for `selected` (None: the whole suite)."""
    if spec.framework == "pytest" and not spec.command:
        return _pytest(spec, selected, out, tree, python_candidates(spec, python))
    if spec.framework == "node" and not spec.command:
        return node_invocation(spec.node_script, selected, out)
    if spec.framework == "go" and not spec.command:
        argv = ["go", "test", "-json", *(selected or ["./..."])]
        return Invocation(argv, shlex.join(argv), "go")
    if spec.framework == "cargo" and not spec.command:
        filters = ["--", *selected] if selected else []
        shown = shlex.join(["cargo", "test", "--no-fail-fast", "--color", "never", *filters])
        return Invocation(["/bin/sh", "-c", 'exec cargo test --no-fail-fast --color never "$@" 2>&1', "sh", *filters],
                          shown, "cargo")  # fmt: skip
    if spec.framework == "make" and not spec.command:
        return Invocation(["make", "test"], "make test", "none", note=_whole(selected, "make test"))
    command = spec.command or "false"
    return Invocation(["/bin/sh", "-c", command], command, "custom" if spec.junit else "none",
                      note=_whole(selected, "a custom test command"))  # fmt: skip


def _whole(selected: list[str] | None, what: str) -> str:
    return f"{what} cannot run a selection; the whole suite ran" if selected else ""


def collect(spec: TestSpec, call: Invocation, result: ExecResult, out: Path, tree: Path) -> Collected:
    """The per-test results the run left behind, or why there are none."""
    log = result.stdout + result.stderr
    if result.exit_code == NOT_FOUND and NO_PYTEST in result.stderr:
        return Collected(None, result.stderr.strip().splitlines()[-1].removeprefix("shipway: ")
                         + "; see `python` and `setup` in docs/testing.md")  # fmt: skip
    if result.exit_code == NOT_FOUND and not _has_report(out):
        return Collected(None, f"the test command was not found in the sandbox (exit 127): {tail(log.strip(), 200)}")
    if call.reader == "none":
        return Collected(None)
    try:
        cases = _read(spec, call.reader, result, out, tree)
    except ReportUnreadable as exc:
        return Collected(None, str(exc))
    if cases is None or (not cases and result.exit_code not in (0, 1, 5)):
        return Collected(None, _no_report(spec, result))
    return Collected(cases)


def _read(spec: TestSpec, reader: Reader, result: ExecResult, out: Path, tree: Path) -> list[CaseResult] | None:
    if reader == "go":
        return parse_go_json(result.stdout, spec.go_module, result.stderr)
    if reader == "cargo":
        return parse_cargo_output(result.stdout)
    if reader == "custom":
        return _custom_junit(spec, tree)
    if reader == "jest":
        path = out / JEST_FILE
        return parse_jest_json(path.read_bytes(), str(tree)) if path.is_file() and not path.is_symlink() else None
    path = out / JUNIT_FILE
    if not path.is_file() or path.is_symlink():
        return None
    return parse_junit(path.read_bytes(), "pytest" if reader == "pytest" else "suites", str(tree))


def _has_report(out: Path) -> bool:
    return (out / JUNIT_FILE).is_file()


def _custom_junit(spec: TestSpec, tree: Path) -> list[CaseResult] | None:
    cases: list[CaseResult] = []
    found = False
    root = tree.resolve()
    for pattern in spec.junit:
        for path in sorted(tree.glob(pattern)):
            if path.is_symlink() or not path.is_file() or root not in path.resolve().parents:
                continue
            found = True
            cases += parse_junit(path.read_bytes(), "suites", str(tree))
    return cases if found else None


def _no_report(spec: TestSpec, result: ExecResult) -> str:
    if spec.framework == "pytest" and result.exit_code in PYTEST_EXIT:
        why = PYTEST_EXIT[result.exit_code]
    else:
        why = f"the {spec.framework} run left no test results"
    return f"{why} (exit {result.exit_code}); the end of the log is in log_tail"
