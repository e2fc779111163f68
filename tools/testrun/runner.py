"""One selection of tests, or the setup step, run in a sandbox workspace."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from sandbox.base import ExecResult, Limits, NetworkPolicy, Sandbox, Workspace
from tools.testrun.detect import TestSpec
from tools.testrun.frameworks import OFFLINE_ENV, Collected, Invocation, collect, invocation
from tools.testrun.report import MAX_FAILURES, CaseResult, FailedTest, SetupResult, TestReport, Totals, tail

CACHE_DIRS = {"XDG_CACHE_HOME": "xdg", "npm_config_cache": "npm", "GOMODCACHE": "gomod", "GOCACHE": "gobuild",
              "CARGO_HOME": "cargo", "CARGO_TARGET_DIR": "cargo-target", "PIP_CACHE_DIR": "pip"}  # fmt: skip


@dataclass(frozen=True)
class SuiteRun:
    """Everything one sandboxed test command needs."""

    spec: TestSpec
    selected: list[str] | None
    """Paths or ids to run; None runs the whole suite."""
    tree: Path
    workspace: Workspace
    out: Path
    cache: Path | None
    limits: Limits
    python: str | None = None
    python_envs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SuiteResult:
    invocation: Invocation
    result: ExecResult
    collected: Collected

    @property
    def log(self) -> str:
        return f"$ {self.invocation.shown}\n{self.result.stdout}{self.result.stderr}"


def cache_env(cache: Path | None) -> dict[str, str]:
    """Toolchain caches in the task's cache directory, so setup's downloads serve later runs."""
    if cache is None:
        return {}
    return {key: str(cache / name) for key, name in CACHE_DIRS.items()}


def prepare_cache(cache: Path, owner: int | None) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for name in (cache, *(cache / sub for sub in CACHE_DIRS.values())):
        name.mkdir(exist_ok=True)
        if owner is not None:
            os.chown(name, owner, owner)


def _workspace(base: Workspace, extra_env: dict[str, str], writable: tuple[Path, ...],
               readonly: tuple[Path, ...] = ()) -> Workspace:  # fmt: skip
    return dataclasses.replace(
        base,
        env=base.env | extra_env,
        writable=base.writable + writable,
        readonly=base.readonly + tuple((p, p) for p in readonly),
    )


def run_suite(sandbox: Sandbox, run: SuiteRun) -> SuiteResult:
    call = invocation(run.spec, run.selected, run.out, run.tree, run.python)
    writable = (run.out,) if run.cache is None else (run.out, run.cache)
    env = OFFLINE_ENV | cache_env(run.cache) | call.env
    workspace = _workspace(run.workspace, env, writable, run.python_envs)
    result = sandbox.run(call.argv, workspace, run.limits, NetworkPolicy.NONE)
    return SuiteResult(call, result, collect(run.spec, call, result, run.out, run.tree))


def run_setup(
    sandbox: Sandbox, spec: TestSpec, workspace: Workspace, cache: Path | None, network: bool, limits: Limits
) -> tuple[SetupResult, str]:
    """The dependency-install step: network only when `network` (the server's policy) allows it."""
    assert spec.setup is not None
    writable = (cache,) if cache is not None else ()
    result = sandbox.run(["/bin/sh", "-c", spec.setup], _workspace(workspace, cache_env(cache), writable), limits,
                         NetworkPolicy.OPEN if network else NetworkPolicy.NONE)  # fmt: skip
    log = f"$ {spec.setup}\n{result.stdout}{result.stderr}"
    return SetupResult(command=spec.setup, exit_code=result.exit_code, network=network,
                       duration_ms=result.duration_ms, cached=False, log_tail=tail(log, 1_500)), log  # fmt: skip


def failed_tests(cases: list[CaseResult]) -> list[FailedTest]:
    failing = [c for c in cases if c.outcome in ("failed", "error")]
    failing.sort(key=lambda c: (c.phase != "collection", c.id))
    fields = ("id", "outcome", "phase", "file", "line", "message", "traceback")
    return [FailedTest.model_validate(c.model_dump(include=set(fields))) for c in failing]


def fill_report(report: TestReport, suite: SuiteResult, timeout_s: float) -> TestReport:
    """`report` with the outcome of `suite`: status, totals, failures, reason."""
    result, cases = suite.result, suite.collected.cases
    update: dict[str, object] = {
        "command": suite.invocation.shown,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "duration_ms": result.duration_ms,
        "per_test": cases is not None,
    }
    note = suite.invocation.note
    if note:
        update["selection_reason"] = f"{report.selection_reason}; {note}" if report.selection_reason else note
    if cases is None:
        update["log_tail"] = tail(suite.log)
    if result.timed_out or result.limit_hit:
        why = f"the tests timed out after {timeout_s:g} s" if result.timed_out else f"stopped: {result.limit_hit}"
        update |= {"status": "error", "reason": f"{why}; the log has the output so far", "log_tail": tail(suite.log)}
    elif suite.collected.problem:
        return report.model_copy(update=update | {"status": "error", "reason": suite.collected.problem,
                                                  "log_tail": tail(suite.log)})  # fmt: skip
    if cases is None:
        status = "passed" if result.exit_code == 0 else "failed"
        return report.model_copy(update={"status": status} | update)
    failures = failed_tests(cases)
    update |= {"totals": Totals.of(cases), "failures": failures[:MAX_FAILURES],
               "failures_omitted": max(0, len(failures) - MAX_FAILURES)}  # fmt: skip
    if "status" in update:
        return report.model_copy(update=update)
    if not cases:
        reason = "no tests were collected; check the selection or the test configuration"
        return report.model_copy(update=update | {"status": "error", "reason": reason, "log_tail": tail(suite.log)})
    if failures:
        return report.model_copy(update=update | {"status": "failed"})
    if result.exit_code != 0:
        reason = f"every test passed but the command exited {result.exit_code}; see the log"
        return report.model_copy(update=update | {"status": "failed", "reason": reason, "log_tail": tail(suite.log)})
    return report.model_copy(update=update | {"status": "passed"})
