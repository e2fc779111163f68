"""Test runs for tasks and checkouts: setup, the run, the base-commit comparison, the record.

A task's tests run on its worktree; the test configuration (`[test]` in shipway.toml) is read
from the task's base commit, so a change cannot rewrite the command that judges it. A plain
checkout (`shipway test run --repo PATH`) runs in place with its `.git` read-only, and compares
with its HEAD when it has uncommitted changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mcp_server.config import REPO_FILE, Settings
from mcp_server.shared_test_runs import SharedTestRunStore
from mcp_server.tasks.chain import sha256_hex
from mcp_server.tasks.model import Actor, Task, TaskState, utcnow
from mcp_server.workspaces import TaskWorkspaces
from sandbox.base import Limits, Sandbox, Workspace
from sandbox.host_git import driver_overrides, run_git
from sandbox.worktree import WorktreeManager, sandbox_uid
from tools.errors import ToolInputError
from tools.testrun.affected import select_affected
from tools.testrun.baseline import WHOLE, by_unit, compare, mark, units_of
from tools.testrun.changes import TreeState, exists_at, file_at, tree_state
from tools.testrun.coverage_map import covering_tests
from tools.testrun.detect import TestSpec, read_test_config, resolve_spec
from tools.testrun.report import BaselineDiff, CaseResult, Outcome, Selection, SetupResult, TestReport
from tools.testrun.runner import SuiteResult, SuiteRun, fill_report, prepare_cache, run_setup, run_suite
from tools.testrun.store import TestRunStore

log = logging.getLogger(__name__)

MAX_PATHS = 200
MAX_PATH_CHARS = 500
SETUP_TIMEOUT_S = 1_800.0
SETUP_LIMITS = Limits(timeout_s=SETUP_TIMEOUT_S, cpu_seconds=int(SETUP_TIMEOUT_S * 2))
LOG_URI = "shipway://test-runs/{run_id}/log"


@dataclass(frozen=True)
class TestTarget:
    """A tree to test, how the sandbox sees it, and what it is compared with."""

    __test__ = False

    task_id: str | None
    tree: Path
    workspace: Workspace
    owner: int | None
    state: TreeState | None
    base: str | None
    config_text: str | None
    manager: WorktreeManager | None
    cache: Path | None
    scope: str

    def git(self, *args: str) -> str:
        assert self.manager is not None
        return run_git(self.manager.repo, *args, overrides=driver_overrides(self.manager.repo)).stdout


def check_selection(selection: str, paths: list[str] | None) -> list[str] | None:
    """Validated paths for `selection` (before anything runs); ToolInputError says what is wrong."""
    if selection not in ("affected", "full", "paths"):
        raise ToolInputError(f"selection must be affected, full or paths, got {selection!r}")
    if selection != "paths":
        if paths:
            raise ToolInputError("paths are only used with selection='paths'; drop them or set selection='paths'")
        return None
    if not paths:
        raise ToolInputError("selection='paths' needs paths: test files, directories or ids such as "
                             "tests/test_x.py::test_y")  # fmt: skip
    if len(paths) > MAX_PATHS:
        raise ToolInputError(f"{len(paths)} paths given; the limit is {MAX_PATHS}. Select directories instead")
    clean = []
    for raw in paths:
        path = raw.strip()
        if not path or len(path) > MAX_PATH_CHARS or "\x00" in path or "\n" in path:
            raise ToolInputError(f"path {raw[:60]!r} is empty, too long or contains control characters")
        if path.startswith("-"):
            raise ToolInputError(f"path {path[:60]!r} starts with '-'; give test paths or ids, not options")
        file = path.split("::", 1)[0]
        pure = PurePosixPath(file)
        if pure.is_absolute() or ".." in pure.parts:
            raise ToolInputError(f"path {path[:60]!r} must be relative to the repository root, without '..'")
        clean.append(path)
    return clean


class TaskTests:
    """Runs tests for tasks (and plain checkouts), keeps the reports, and logs every run."""

    __test__ = False

    def __init__(self, workspaces: TaskWorkspaces, settings: Settings) -> None:
        self.workspaces = workspaces
        self.settings = settings
        artifacts = workspaces.shared.artifacts if workspaces.shared is not None else None
        root = settings.state_path / "test-runs"
        self.store = SharedTestRunStore(root, artifacts) if artifacts is not None else TestRunStore(root)

    @property
    def limits(self) -> Limits:
        return Limits(timeout_s=self.settings.test_timeout_s, cpu_seconds=int(self.settings.test_timeout_s * 2))

    # -- targets

    def task_target(self, task_id: str) -> TestTarget:
        task, worktree = self.workspaces.live_worktree(task_id)
        manager = self.workspaces.manager(self.workspaces.repo_of(task))

        def git(*args: str) -> str:
            return worktree.git(*args, overrides=driver_overrides(worktree.repo))

        state = tree_state(git, task.base_commit)
        return TestTarget(
            task_id=task.id, tree=worktree.path, workspace=manager.workspace(worktree), owner=worktree.uid,
            state=state, base=task.base_commit, config_text=self.base_config(task),
            manager=manager, cache=manager.state_dir / "test-cache" / task.id, scope=f"task:{task.id}",
        )  # fmt: skip

    def base_config(self, task: Task) -> str | None:
        """The task's shipway.toml as of its base commit: what judges a change is not part of the change."""
        repo = self.workspaces.repo_of(task)

        def git(*args: str) -> str:
            return run_git(repo, *args, overrides=driver_overrides(repo)).stdout

        return file_at(git, task.base_commit, REPO_FILE)

    def checkout_target(self, path: Path) -> TestTarget:
        """A directory tested in place (its .git read-only); compared with HEAD when it is a git checkout."""
        tree = path.resolve()
        if not tree.is_dir():
            raise ToolInputError(f"{path} is not a directory")
        config = (tree / REPO_FILE).read_text(encoding="utf-8") if (tree / REPO_FILE).is_file() else None
        dotgit = tree / ".git"
        state_dir = self.settings.state_path
        protect = ((dotgit, dotgit),) if dotgit.exists() else ()
        owner = sandbox_uid(f"dir:{tree}")  # as root, the tests run as this uid (reading the tree, writing reports)
        workspace = Workspace(workdir=tree, hidden=(state_dir,), readonly=protect, uid=owner)
        cache = state_dir / "test-cache" / ("dir-" + hashlib.sha256(str(tree).encode()).hexdigest()[:12])
        if not dotgit.exists():
            return TestTarget(None, tree, workspace, owner, None, None, config, None, cache, f"dir:{tree}")
        manager = WorktreeManager(tree, state_dir)

        def git(*args: str) -> str:
            return run_git(tree, *args, overrides=driver_overrides(tree)).stdout

        state = tree_state(git, "HEAD")
        return TestTarget(None, tree, workspace, owner, state, state.head, config, manager, cache, f"dir:{tree}")

    # -- running

    def run_task(
        self, task_id: str, selection: Selection, paths: list[str] | None, actor: Actor, baseline: bool = True
    ) -> TestReport:
        clean = check_selection(selection, paths)
        target = self.task_target(task_id)
        report = self.run(target, selection, clean, baseline)
        payload: dict[str, Any] = {
            "run_id": report.run_id, "selection": selection, "status": report.status, "commit": report.commit,
            "dirty": report.dirty, "totals": report.totals.model_dump(), "framework": report.framework,
            "newly_failing": len(report.baseline.newly_failing) if report.baseline else None,
            "log_sha256": sha256_hex(self.store.log(report.run_id).encode()),
        }  # fmt: skip
        store = self.workspaces.tasks.store
        moved = TaskState.TESTING if store.get(target.task_id or "").state == TaskState.CODING else None
        store.record(target.task_id or "", actor=str(actor), action="tests_run", payload=payload, to_state=moved)
        return report

    def run(self, target: TestTarget, selection: Selection, paths: list[str] | None, baseline: bool) -> TestReport:
        spec = resolve_spec(target.tree, read_test_config(target.config_text))
        selected, reason = self._select(target, spec, selection, paths)
        run_id, out = self.store.new_run(target.owner)
        state = target.state
        report = TestReport(
            run_id=run_id, task_id=target.task_id, commit=state.head if state else None,
            dirty=state.dirty if state else False, framework=spec.framework, command="", selection=selection,
            selected=selected or [], selection_reason=reason, status="error",
            log_uri=LOG_URI.format(run_id=run_id), started_at=utcnow(),
        )  # fmt: skip
        logs: list[str] = []
        if spec.setup:
            setup = self._setup(target, spec, logs)
            report = report.model_copy(update={"setup": setup})
            if setup.exit_code != 0:
                why = f"the setup step `{spec.setup}` failed (exit {setup.exit_code})"
                if not setup.network:
                    why += "; it ran without network (set SHIPWAY_TEST_SETUP_NETWORK=1 to allow it)"
                return self._save(report.model_copy(update={"reason": why, "log_tail": setup.log_tail}), logs)
        if selected == []:
            return self._save(report.model_copy(update={"status": "passed"}), [*logs, f"nothing to run: {reason}\n"])
        suite = run_suite(self.sandbox, self.suite_run(target, spec, selected, out, target.workspace))
        logs.append(suite.log)
        report = fill_report(report, suite, self.settings.test_timeout_s)
        cases = suite.collected.cases
        if baseline and cases is not None and report.status != "error" and self._differs(target):
            report = self._compare(target, spec, selected, cases, report, logs)
        return self._save(report, logs)

    @property
    def sandbox(self) -> Sandbox:
        return self.workspaces.sandbox

    def suite_run(self, target: TestTarget, spec: TestSpec, selected: list[str] | None, out: Path,
               workspace: Workspace) -> SuiteRun:  # fmt: skip
        envs = self._python_envs(target)
        if target.cache is not None:
            prepare_cache(target.cache, target.owner)
        return SuiteRun(spec=spec, selected=selected, tree=workspace.workdir, workspace=workspace, out=out,
                        cache=target.cache, limits=self.limits, python=self.settings.test_python,
                        python_envs=envs)  # fmt: skip

    def _python_envs(self, target: TestTarget) -> tuple[Path, ...]:
        """Virtualenvs outside the tree to show read-only: the configured one, and the main checkout's .venv."""
        found = []
        if self.settings.test_python and Path(self.settings.test_python).is_absolute():
            found.append(Path(self.settings.test_python).parent.parent)
        if target.manager is not None and target.task_id is not None:
            found.append(target.manager.repo / ".venv")
        return tuple(p for p in found if (p / "pyvenv.cfg").is_file())

    def _select(self, target: TestTarget, spec: TestSpec, selection: Selection,
                paths: list[str] | None) -> tuple[list[str] | None, str]:  # fmt: skip
        if selection == "full":
            return None, "the whole suite"
        if selection == "paths":
            return self._existing(target, spec, paths or []), "the paths asked for"
        if spec.framework != "pytest":
            return None, f"affected selection follows Python imports; for {spec.framework} the whole suite runs"
        if target.state is None:
            return None, "not a git checkout, so nothing says what changed; running the whole suite"
        covered: dict[str, set[str]] = {}
        for data in {target.tree / ".coverage", *([target.manager.repo / ".coverage"] if target.manager else [])}:
            covered |= covering_tests(data, target.state.changed, target.state.files)
        cache = self.store.import_cache()
        found = select_affected(target.tree, target.state.files, target.state.changed, covered or None, cache)
        self.store.save_import_cache(cache)
        return found.tests, found.reason

    def _existing(self, target: TestTarget, spec: TestSpec, paths: list[str]) -> list[str]:
        if spec.framework == "cargo":
            return paths  # test-name filters, not paths
        missing = [p for p in paths if not (target.tree / p.split("::", 1)[0]).exists()]
        if missing:
            raise ToolInputError(f"no such test path in the tree: {', '.join(missing[:5])}")
        if spec.framework == "go":
            return [p if p.startswith("./") else f"./{p}" for p in paths]
        return paths

    def _setup(self, target: TestTarget, spec: TestSpec, logs: list[str]) -> SetupResult:
        assert spec.setup is not None
        key = self._setup_key(target, spec)
        marker = self.store.root / "setup" / key
        if marker.is_file():
            return SetupResult(command=spec.setup, exit_code=0, network=self.settings.test_setup_network,
                               duration_ms=0, cached=True)  # fmt: skip
        if target.cache is not None:
            prepare_cache(target.cache, target.owner)
        result, text = run_setup(self.sandbox, spec, target.workspace, target.cache,
                                 self.settings.test_setup_network, SETUP_LIMITS)  # fmt: skip
        logs.append(text)
        if target.task_id is not None:
            self.workspaces.tasks.store.record(
                target.task_id, actor="system:shipway", action="test_setup",
                payload=result.model_dump(exclude={"log_tail"}) | {"log_sha256": sha256_hex(text.encode())},
            )  # fmt: skip
        if result.exit_code == 0:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(spec.setup, encoding="utf-8")
        return result

    def _setup_key(self, target: TestTarget, spec: TestSpec) -> str:
        digest = hashlib.sha256(f"{target.scope}\0{spec.setup}\0{self.settings.test_setup_network}".encode())
        for name in spec.setup_inputs:
            file = target.tree / name
            digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b""))
        return digest.hexdigest()[:32]

    def _differs(self, target: TestTarget) -> bool:
        state = target.state
        return bool(state and target.base and target.manager and (state.head != target.base or state.dirty))

    def _compare(self, target: TestTarget, spec: TestSpec, selected: list[str] | None, cases: list[CaseResult],
                 report: TestReport, logs: list[str]) -> TestReport:  # fmt: skip
        assert target.base is not None and target.manager is not None
        fingerprint = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
        units = units_of(spec.framework, selected)
        cached = self.store.baseline(target.base, fingerprint)
        missing = [u for u in units if u not in cached]
        if missing:
            error = self._run_base(target, spec, missing, fingerprint, report.run_id, logs)
            if error:
                diff = BaselineDiff(commit=target.base, cached=False, error=error)
                return report.model_copy(update={"baseline": diff})
            cached = self.store.baseline(target.base, fingerprint)
        diff, verdicts = compare(target.base, not missing, cases, {u: cached.get(u, {}) for u in units})
        return report.model_copy(update={"baseline": diff, "failures": mark(report.failures, verdicts)})

    def _run_base(self, target: TestTarget, spec: TestSpec, units: list[str], fingerprint: str, run_id: str,
                  logs: list[str]) -> str | None:  # fmt: skip
        """Run `units` on the base commit and cache their results; an error message if that failed."""
        assert target.base is not None and target.manager is not None
        results: dict[str, dict[str, Outcome]] = {u: {} for u in units}  # units absent at base have no tests there
        selected = self._base_selection(target, spec, units)
        if selected != []:
            out = self.store.run_dir(run_id) / "base"
            _, suite = self.run_at_commit(target.manager, target.base, lambda _: spec, selected, out, logs)
            if isinstance(suite, str):
                return f"on the base commit, {suite}"
            if suite.collected.cases is None:
                return f"the tests could not run on the base commit: {suite.collected.problem or 'no results'}"
            results |= by_unit(spec.framework, suite.collected.cases, units)
        self.store.add_baseline(target.base, fingerprint, results)
        return None

    def _base_selection(self, target: TestTarget, spec: TestSpec, units: list[str]) -> list[str] | None:
        """What to run at the base for `units`: None for everything, [] when none of them exists there."""
        assert target.base is not None
        if units == [WHOLE]:
            return None
        if spec.framework != "pytest":
            return units[0].split(" ")
        there = exists_at(target.git, target.base, [u.split("::", 1)[0] for u in units])
        return [u for u in units if u.split("::", 1)[0] in there]

    def run_at_commit(
        self,
        manager: WorktreeManager,
        commit: str,
        spec_for: Callable[[Path], TestSpec],
        selected: list[str] | None,
        out: Path,
        logs: list[str],
    ) -> tuple[TestSpec, SuiteResult | str]:
        """Setup (if any) and the tests in a throwaway checkout of `commit`; a message if setup failed.

        `spec_for` gets the checkout's root: detection looks at the tree being tested."""
        with manager.throwaway(commit) as worktree:
            spec = spec_for(worktree.path)
            workspace = manager.workspace(worktree)
            out.mkdir(exist_ok=True)
            if worktree.uid is not None:
                os.chown(out, worktree.uid, worktree.uid)
            if spec.setup:
                setup, text = run_setup(self.sandbox, spec, workspace, None, self.settings.test_setup_network,
                                        SETUP_LIMITS)  # fmt: skip
                logs.append(f"--- {commit[:12]}: setup ---\n{text}")
                if setup.exit_code != 0:
                    return spec, f"the setup step failed (exit {setup.exit_code})"
            checkout = TestTarget(None, worktree.path, workspace, worktree.uid, None, None, None, None, None, commit)
            suite = run_suite(self.sandbox, self.suite_run(checkout, spec, selected, out, workspace))
            logs.append(f"--- {commit[:12]} ---\n{suite.log}")
            return spec, suite

    def _save(self, report: TestReport, logs: list[str]) -> TestReport:
        self.store.save(report, "".join(logs))
        return report

    # -- reading

    def report(self, run_id: str) -> TestReport:
        return self.store.load(run_id)

    def log_text(self, run_id: str) -> str:
        return self.store.log(run_id)
