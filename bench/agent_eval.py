"""Evaluate Shipway's agents on the golden tasks in examples/golden (`make eval`).

For each task: a fresh copy of its sample repository, the request started as an autonomous
task, the planner and coder run by a real worker through the real tools and sandbox; the
harness approves the plan and the PR as `human:eval-reviewer` and merges. Then:

- task success: the task's hidden acceptance tests (never shown to the agents) pass in the
  sandbox, run by Shipway's test runner in a clone of the merged branch;
- tool correctness: deepeval's ToolCorrectnessMetric, the tools the agents called against the
  task's expected tools;
- plan-to-diff conformance: the share of changed files that the approved plan listed;
- steps, tokens and cost, from the task's event log.

With the configured model (SHIPWAY_MODEL, ...) this measures the agents. With --replay each
task's recorded script stands in for the model: that proves the harness's wiring (CI runs it)
and says nothing about any model. deepeval lives in its own virtualenv (.venv-eval): it pins
click<8.4, which the embedding extra cannot use.

    .venv-eval/bin/python -m bench.agent_eval [--replay] [--only NAME] [--json]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")  # before deepeval is imported: it phones home otherwise

import anyio
from deepeval.metrics import BaseMetric, ToolCorrectnessMetric
from deepeval.models import DeepEvalBaseLLM
from deepeval.test_case import LLMTestCase, ToolCall
from pydantic import BaseModel

from agents.chat import ChatModel
from agents.scripted import ScriptedChatModel
from mcp_server.agent_journal import spend_of
from mcp_server.agent_worker import Worker, build_model
from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.demo import EXAMPLES, make_sample
from mcp_server.tasks.model import Actor, TaskState

GOLDEN = EXAMPLES / "golden"
ROOT = EXAMPLES.parent
DEVELOPER = Actor(kind="human", name="eval-developer")
REVIEWER = Actor(kind="human", name="eval-reviewer")


class NoJudge(DeepEvalBaseLLM):
    """The judge deepeval wants at construction; the metrics used here score without one."""

    def __init__(self) -> None:
        super().__init__(model="no-judge")

    def load_model(self) -> None:
        return None

    def generate(self, prompt: str, schema: Any = None) -> str:
        raise RuntimeError("this evaluation uses no LLM judge")

    async def a_generate(self, prompt: str, schema: Any = None) -> str:
        raise RuntimeError("this evaluation uses no LLM judge")

    def get_model_name(self) -> str:
        return "no-judge"


class PlanConformance(BaseMetric):
    """Share of the changed files that the approved plan listed (paths, dir/ prefixes or globs)."""

    def __init__(self, plan_files: list[str], threshold: float = 1.0) -> None:
        self.plan_files = plan_files
        self.threshold = threshold

    def measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        changed = list((test_case.metadata or {}).get("changed_files", []))
        covered = [f for f in changed if any(_listed(f, entry) for entry in self.plan_files)]
        self.score = len(covered) / len(changed) if changed else 0.0
        self.reason = f"{len(covered)} of {len(changed)} changed files are in the plan"
        self.success = self.score >= self.threshold
        return self.score

    async def a_measure(self, test_case: LLMTestCase, *args: Any, **kwargs: Any) -> float:
        return self.measure(test_case)

    def is_successful(self) -> bool:
        return bool(self.success)

    @property
    def __name__(self) -> str:  # deepeval's metrics name themselves this way
        return "Plan conformance"


def _listed(path: str, entry: str) -> bool:
    return path == entry or (entry.endswith("/") and path.startswith(entry)) or fnmatch.fnmatch(path, entry)


class GoldenResult(BaseModel):
    name: str
    state: str
    reason: str | None
    success: bool
    hidden_tests: str
    tools_called: list[str]
    expected_tools: list[str]
    tool_correctness: float
    plan_conformance: float
    changed_files: list[str]
    steps: int
    tokens: int
    cost_usd: float


def run_golden(folder: Path, workdir: Path, replay: bool) -> GoldenResult:
    spec = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    repo = make_sample(workdir / folder.name, spec["sample"])
    script = ROOT / spec["replay"] if replay else None
    settings = load_settings(repo=repo, agent_launch="external", embedder="none", test_python=sys.executable,
                             model_script=script)  # fmt: skip
    deps = open_deps(settings)
    model: ChatModel = ScriptedChatModel.from_file(script, persist=False) if script else build_model(settings)
    try:
        return _evaluate(deps, folder, spec, model)
    finally:
        deps.ci.close()
        deps.tasks.store.close()


def _drive(deps: ServerDeps, model: ChatModel, request: str) -> str:
    """Run the agents, deciding as the eval reviewer whenever they wait; the task's id."""
    worker = Worker(deps, model, name="eval-worker")
    task = deps.tasks.start(request, DEVELOPER, autonomous=True)
    for _ in range(6):
        anyio.run(worker.run_queued, task.id)
        state = deps.tasks.get(task.id).state
        if state == TaskState.PLAN_REVIEW:
            deps.gate.approve_plan(task.id, "approved by the evaluation harness", REVIEWER)
        elif state == TaskState.REVIEW:
            deps.gate.approve_pr(task.id, "approved by the evaluation harness", REVIEWER)
            deps.gate.merge_pr(task.id, REVIEWER)
        else:
            break
    return task.id


def _evaluate(deps: ServerDeps, folder: Path, spec: dict[str, Any], model: ChatModel) -> GoldenResult:
    task_id = _drive(deps, model, spec["request"])
    task = deps.tasks.get(task_id)
    events = deps.tasks.store.events(task_id)
    spend = spend_of(events)
    called = [call["name"] for e in events if e.action == "agent_step" for call in e.payload["calls"]]
    branch = f"shipway/{task_id}"
    changed = subprocess.run(["git", "-C", task.repo, "diff", "--name-only", task.base_commit, branch],
                             capture_output=True, text=True, check=False).stdout.split()  # fmt: skip
    plan = deps.gate.plan(task_id).plan
    hidden = _hidden_tests(deps, folder, task_id) if task.state == TaskState.MERGED else "not run: it was not merged"
    case = LLMTestCase(input=spec["request"], actual_output=task.state,
                       tools_called=[ToolCall(name=n) for n in called],
                       expected_tools=[ToolCall(name=n) for n in spec["expected_tools"]],
                       metadata={"changed_files": changed})  # fmt: skip
    tools = ToolCorrectnessMetric(model=NoJudge(), threshold=1.0)
    tools.measure(case)
    conformance = PlanConformance(plan.files if plan else [])
    conformance.measure(case)
    return GoldenResult(
        name=folder.name, state=task.state, reason=task.reason, success=hidden.startswith("passed"),
        hidden_tests=hidden, tools_called=called, expected_tools=spec["expected_tools"],
        tool_correctness=float(tools.score or 0.0), plan_conformance=float(conformance.score or 0.0),
        changed_files=changed, steps=spend.steps, tokens=spend.input_tokens + spend.output_tokens,
        cost_usd=spend.cost_usd,
    )  # fmt: skip


def _hidden_tests(deps: ServerDeps, folder: Path, task_id: str) -> str:
    """Copy the hidden tests into a clone of the merged branch and run them there, sandboxed."""
    task = deps.tasks.get(task_id)
    tree = Path(tempfile.mkdtemp(prefix="shipway-hidden-")) / "merged"
    subprocess.run(["git", "clone", "-q", "--branch", str(task.base_branch), task.repo, str(tree)], check=True)
    shutil.copytree(folder / "hidden", tree / ".hidden")
    report = deps.tests.run(deps.tests.checkout_target(tree), "paths", [".hidden"], baseline=False)
    if report.status == "passed":
        return f"passed: {report.totals.passed} passed"
    failed = ", ".join(f.id for f in report.failures) or report.reason or report.log_tail[-300:]
    return f"{report.status}: {failed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.agent_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--replay", action="store_true", help="Use each task's recorded script instead of a model")
    parser.add_argument("--only", action="append", default=[], help="Run only this golden task (repeatable)")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON")
    parser.add_argument("--golden", type=Path, default=GOLDEN, help="Folder of golden tasks (default: %(default)s)")
    args = parser.parse_args(argv)
    folders = [f for f in sorted(args.golden.iterdir()) if (f / "task.json").exists()]
    if args.only:
        folders = [f for f in folders if f.name in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="shipway-eval-"))
    results = [run_golden(folder, workdir, args.replay) for folder in folders]
    if args.json:
        print(json.dumps([r.model_dump() for r in results], indent=2))
        return 0
    label = "REPLAY of recorded scripts (checks the harness, not a model)" if args.replay else "configured model"
    print(f"agent evaluation on {len(results)} golden task(s), {label}; work in {workdir}")
    for r in results:
        print(f"  {r.name:<16} {'PASS' if r.success else 'FAIL'}  state={r.state}  tools={r.tool_correctness:.2f}  "
              f"plan-conformance={r.plan_conformance:.2f}  steps={r.steps}  tokens={r.tokens:,}  "
              f"${r.cost_usd:.4f}  hidden: {r.hidden_tests}")  # fmt: skip
    n = len(results) or 1
    print(f"success {sum(r.success for r in results)}/{len(results)}; mean tool correctness "
          f"{sum(r.tool_correctness for r in results) / n:.2f}; mean plan conformance "
          f"{sum(r.plan_conformance for r in results) / n:.2f}; mean steps {sum(r.steps for r in results) / n:.1f}; "
          f"mean tokens {sum(r.tokens for r in results) / n:,.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
