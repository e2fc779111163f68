"""The loop driver: takes one task as far as agents can, then waits for people or ends.

It reads the task's state through the tools and does what that state asks:

  requested / planning  -> planner round (with the reviewer's comments after a send-back)
  plan_review           -> wait: a person approves the plan
  coding / testing      -> coder round, tests verified, then open_pr
  pr_open / ci          -> watch CI; red CI -> needs_changes
  needs_changes         -> coder round with the CI failures or the reviewer's comments
  review / approved     -> wait: a person approves and merges
  merged, rejected, ... -> done

Everything goes through the MCP tools, so the gates hold: the driver cannot approve a plan or
merge unapproved code any more than an editor's agent can. It keeps no state of its own; the
task and the journal are the state, which is what makes `shipway task continue` resume.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agents import prompts
from agents.loop import AgentContext, RoundInfo, converse

PLANNER_TOOLS = ("search_repo", "repo_map", "read_file", "search_knowledge", "propose_plan")
CODER_TOOLS = ("search_repo", "read_file", "repo_map", "search_knowledge", "show_diff", "apply_edit",
               "revert_edit", "run_tests", "get_test_report")  # fmt: skip
DRIVER_TOOLS = ("get_task", "get_task_log", "get_plan", "get_pr", "open_pr", "ci_status")
ALL_TOOLS = tuple(dict.fromkeys(PLANNER_TOOLS + CODER_TOOLS + DRIVER_TOOLS))
MAX_PHASES = 40
CI_WAIT_S = 600.0


class DriverLimits(BaseModel):
    ci_retries: int = Field(default=2, ge=0, description="Coder rounds to fix a red CI before giving up")
    review_rounds: int = Field(default=3, ge=0, description="Coder rounds answering 'request changes'")
    test_retries: int = Field(default=3, ge=0, description="Times the coder is sent back when tests still fail")
    plan_nudges: int = Field(default=2, ge=0, description="Times the planner is reminded to propose a plan")
    ci_timeout_s: float = Field(default=3_600.0, gt=0, description="How long to wait for one CI run")


class Outcome(BaseModel):
    status: Literal["waiting", "finished", "failed", "paused"]
    state: str
    reason: str


class AgentGaveUp(Exception):
    """The agents cannot take the task further; the message says why (the task is failed with it)."""


class Driver:
    def __init__(self, ctx: AgentContext, limits: DriverLimits | None = None) -> None:
        self.ctx = ctx
        self.tools = ctx.toolbox
        self.journal = ctx.journal
        self.limits = limits or DriverLimits()

    async def run(self) -> Outcome:
        """Advance the task until it waits for a person or ends. Raises AgentGaveUp, BudgetExceeded, ModelError."""
        for _ in range(MAX_PHASES):
            task = await self.tools.data("get_task")
            state, tid = task["state"], task["id"]
            if state in ("requested", "planning"):
                await self._plan(task)
            elif state in ("coding", "testing", "needs_changes"):
                await self._code(task)
            elif state in ("pr_open", "ci"):
                await self._watch_ci(task)
            elif state == "plan_review":
                self._settle()
                wanted = f"`shipway plan approve {tid}` or `shipway plan reject {tid} --comment ...`"
                return Outcome(
                    status="waiting",
                    state=state,
                    reason=f"the plan waits for a reviewer: `shipway plan show {tid}`, then {wanted}",
                )
            elif state in ("review", "approved"):
                self._settle()
                return Outcome(status="waiting", state=state,
                               reason=f"the PR waits for a reviewer (the review page, or `shipway pr show {tid}`, "
                                      f"then `shipway review approve {tid}` and `shipway pr merge {tid}`)")  # fmt: skip
            else:
                self._settle()
                return Outcome(status="finished", state=state, reason=task.get("reason") or f"the task is {state}")
        raise AgentGaveUp(f"the task did not settle after {MAX_PHASES} phases")

    def _settle(self) -> None:
        """Close rounds left open by a crash after their work was done (the task moved on since)."""
        for agent in ("planner", "coder"):
            for info in self.journal.rounds(agent):
                if info.outcome is None:
                    self.journal.close_round(info.number, "superseded")

    def _resume(self, agent: str) -> RoundInfo | None:
        rounds = self.journal.rounds(agent)
        return rounds[-1] if rounds and rounds[-1].outcome is None else None

    # -- planning

    async def _plan(self, task: dict[str, Any]) -> None:
        open_round = self._resume("planner")
        if open_round is not None:
            number, messages = open_round.number, self.journal.conversation(open_round.number)
        else:
            view = await self.tools.data("get_plan")
            sent_back = [d for d in view.get("decisions", []) if d["action"] == "plan_rejected"]
            feedback = sent_back[-1].get("comment") if view.get("status") == "changes_requested" and sent_back else None
            messages = prompts.planner_opening(task["request"], feedback)
            number = self.journal.open_round("planner", "replan" if feedback else "plan", messages)
        schemas = self.tools.schemas(PLANNER_TOOLS)
        saved = len(messages)
        for _ in range(self.limits.plan_nudges + 1):
            await converse(self.ctx, "planner", number, messages, schemas, frozenset({"propose_plan"}), saved)
            if (await self.tools.data("get_task"))["state"] not in ("requested", "planning"):
                self.journal.close_round(number, "proposed")
                return
            saved = len(messages)
            messages.append(prompts.no_plan_yet())
        self.journal.close_round(number, "no plan")
        raise AgentGaveUp(f"the planner ended {self.limits.plan_nudges + 1} times without proposing a plan")

    # -- coding

    async def _code(self, task: dict[str, Any]) -> None:
        open_round = self._resume("coder")
        if open_round is not None:
            number, messages = open_round.number, self.journal.conversation(open_round.number)
        else:
            reason, context = await self._why_code(task)
            plan = (await self.tools.data("get_plan")).get("plan") or {}
            messages = prompts.coder_opening(task["request"], plan, context)
            number = self.journal.open_round("coder", reason, messages)
        schemas = self.tools.schemas(CODER_TOOLS)
        summary, saved = "", len(messages)
        for _ in range(self.limits.test_retries + 1):
            summary = await converse(self.ctx, "coder", number, messages, schemas, saved=saved)
            report = await self._verified_tests()
            if report is None or report["status"] == "passed":
                break
            saved = len(messages)
            messages.append(prompts.tests_failed(report))
        else:
            self.journal.close_round(number, "tests still fail")
            raise AgentGaveUp(f"the tests still fail after {self.limits.test_retries + 1} coder attempts")
        self.journal.close_round(number, "done")
        state = (await self.tools.data("get_task"))["state"]
        if state == "testing":
            await self.tools.data("open_pr", body=summary[:5_000] or None)
        elif state != "coding":
            return  # moved on meanwhile (e.g. aborted); run() reads it again
        else:
            raise AgentGaveUp("the coder finished without changing anything; there is nothing to open a PR for")

    async def _why_code(self, task: dict[str, Any]) -> tuple[str, str]:
        """Why a coder round starts: the plan, a red CI, or a reviewer's request."""
        if task["state"] != "needs_changes":
            return "implement", ""
        pr = await self.tools.data("get_pr")
        if pr.get("ci") == "failure":
            done = sum(1 for r in self.journal.rounds("coder") if r.reason == "ci failure")
            if done >= self.limits.ci_retries:
                raise AgentGaveUp(f"CI still fails after {done} fix attempt(s) (SHIPWAY_AGENT_CI_RETRIES)")
            ci = await self.tools.data("ci_status")
            text = prompts.failures_text(ci.get("report")) if ci.get("report") else ci.get("summary", "")
            return "ci failure", "CI failed on the pull request:\n\n" + prompts.untrusted("ci", text)
        asked = [d for d in pr.get("decisions", []) if d["action"] == "changes_requested"]
        if asked:
            done = sum(1 for r in self.journal.rounds("coder") if r.reason == "review")
            if done >= self.limits.review_rounds:
                raise AgentGaveUp(f"changes were requested {done + 1} times; a person should take it from here")
            comment = asked[-1].get("comment") or ""
            return "review", "A reviewer asked for changes:\n\n" + prompts.untrusted("reviewer", comment)
        return "recheck", "The change moved since it was reviewed; check it and run the tests."

    async def _verified_tests(self) -> dict[str, Any] | None:
        """The newest test run when it covers the current head; else a fresh `affected` run. None: no changes."""
        task = await self.tools.data("get_task")
        if task["state"] == "coding":
            diff = await self.tools.data("show_diff")
            if not diff.get("files"):
                return None
            return await self.tools.data("run_tests", selection="affected")
        if task["state"] != "testing":
            return None
        log = await self.tools.data("get_task_log", after_seq=max(0, task["version"] - 50), limit=50)
        runs = [e for e in log["events"] if e["action"] == "tests_run"]
        if runs and runs[-1]["payload"].get("status") == "passed":
            return {"status": "passed"}
        return await self.tools.data("run_tests", selection="affected")

    # -- CI

    async def _watch_ci(self, task: dict[str, Any]) -> None:
        waited = 0.0
        while waited < self.limits.ci_timeout_s:
            wait = min(CI_WAIT_S, self.limits.ci_timeout_s - waited)
            status = await self.tools.data("ci_status", wait_s=wait)
            if status["state"] != "pending":
                if status["state"] == "error" and status["task_state"] == "ci":
                    raise AgentGaveUp(f"CI could not run: {status.get('summary') or 'no reason given'}")
                return
            waited += wait
        raise AgentGaveUp(f"CI did not finish within {self.limits.ci_timeout_s:g}s")
