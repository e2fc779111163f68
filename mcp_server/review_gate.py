"""The review gate: plans and pull requests, approved or refused by people, enforced here.

Whatever the client, these rules hold because they live in the server:
- only a human identity can approve, request changes or reject (an agent never can; with
  SHIPWAY_FORBID_SELF_APPROVAL the person who started the task cannot approve it either);
- an approval is bound to what was reviewed: a plan by its sha256, a PR by its head commit; a
  new push makes the approval stale;
- `merge_pr` needs an approval of the current head, green CI on that head and no conflicts,
  and names every one that is missing;
- every decision, and every refused attempt, is an event in the task's hash-chained log.

A pull request's record is its task's events (`pr_opened`, `pr_approved`, `changes_requested`,
`pr_merged`, ...) plus what git says now (head, conflicts), so it needs no store of its own.

On a forge with a review page of its own (GitHub), reviews left there are imported under the
same rules: by the person's forge login, bound to the commit they reviewed; a review by the
account Shipway publishes with is the agent's and is refused. Decisions taken in Shipway are
posted back to the forge's PR as comments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_server.ci import TaskCI
from mcp_server.config import Settings
from mcp_server.errors import UserInputError
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor, Event, Task, TaskState
from mcp_server.tasks.service import TaskService
from mcp_server.workspaces import TaskWorkspaces
from sandbox.worktree import BRANCH_PREFIX
from tools.forge.base import Forge, ForgeReview, ForgeUnavailable, MergeRefused
from tools.plan import Plan

log = logging.getLogger(__name__)
S = TaskState
MAX_COMMENT_CHARS = 10_000
DECISIONS = ("pr_approved", "changes_requested", "pr_rejected", "approval_lost", "pr_opened")


class GateRefused(UserInputError):
    """The gate said no; the attempt is in the task's log and nothing else changed."""


class Decision(BaseModel):
    action: str
    by: str
    at: datetime
    comment: str | None = None
    on: str | None = Field(default=None, description="What was decided on: a plan's sha256 or a PR head commit")


class PlanView(BaseModel):
    task_id: str
    status: Literal["none", "proposed", "approved", "changes_requested"]
    plan: Plan | None = None
    plan_sha256: str | None = None
    proposed_by: str | None = None
    decisions: list[Decision] = Field(default_factory=list)
    task_state: TaskState


class PullRequest(BaseModel):
    task_id: str
    forge: str
    state: Literal["none", "open", "merged", "closed"]
    number: int | None = None
    url: str | None = None
    draft: bool = False
    title: str | None = None
    body: str | None = None
    base_branch: str | None = None
    head_branch: str
    head_sha: str = Field(description="The task branch's head now")
    approved_head: str | None = Field(default=None, description="The head commit the newest approval covers")
    ci: Literal["none", "pending", "success", "failure"] = Field(description="CI on the current head")
    conflicts: list[str] = Field(default_factory=list, description="Files that would conflict with the base now")
    missing: list[str] = Field(default_factory=list, description="What merge_pr would refuse for; empty = mergeable")
    merge_commit: str | None = None
    decisions: list[Decision] = Field(default_factory=list)
    task_state: TaskState


def _comment(comment: str | None, required: bool) -> str | None:
    text = (comment or "").strip()
    if required and not text:
        raise UserInputError("a comment is required: say what should change, or why")
    if len(text) > MAX_COMMENT_CHARS or "\x00" in text:
        raise UserInputError(f"the comment must be plain text of at most {MAX_COMMENT_CHARS:,} characters")
    return text or None


def _decision(event: Event) -> Decision:
    on = event.payload.get("plan_sha256") or event.payload.get("head_sha")
    return Decision(action=event.action, by=event.actor, at=event.at, comment=event.payload.get("comment"), on=on)


class ReviewGate:
    def __init__(self, tasks: TaskService, workspaces: TaskWorkspaces, ci: TaskCI, settings: Settings,
                 forge_for: Callable[[Task], Forge]) -> None:  # fmt: skip
        self.tasks = tasks
        self.workspaces = workspaces
        self.ci = ci
        self.settings = settings
        self.forge_for = forge_for
        ci.listen(self._ci_verdict)

    # -- shared

    def _record(self, task: Task, actor: Actor, action: str, payload: dict[str, Any],
                to: TaskState | None = None) -> Task:  # fmt: skip
        return self.tasks.record(task.id, actor, action, payload, to)

    def refuse(self, task: Task, actor: Actor, attempt: str, reason: str,
                origin: dict[str, Any] | None = None) -> GateRefused:  # fmt: skip
        self._record(task, actor, "gate_refused", {"attempt": attempt, "reason": reason, **(origin or {})})
        return GateRefused(f"{attempt} refused: {reason}")

    def check_reviewer(self, task: Task, actor: Actor, attempt: str, origin: dict[str, Any] | None = None) -> None:
        if actor.kind != "human":
            reason = f"{actor} is not a person; only a human reviewer can decide"
            raise self.refuse(task, actor, attempt, reason, origin)
        if self.settings.forbid_self_approval and attempt.startswith("approve") and str(actor) == task.created_by:
            reason = f"{actor} started this task and may not approve it (SHIPWAY_FORBID_SELF_APPROVAL)"
            raise self.refuse(task, actor, attempt, reason, origin)

    def _tell_forge(self, task: Task, text: str, close: bool = False) -> None:
        """Post a decision taken in Shipway on the forge's PR page; a forge outage must not undo it."""
        forge = self.forge_for(task)
        try:
            forge.comment(BRANCH_PREFIX + task.id, text)
            if close:
                forge.close(BRANCH_PREFIX + task.id)
        except ForgeUnavailable as exc:
            log.warning("could not tell %s about task %s: %s", forge.name, task.id, exc)

    def _ci_verdict(self, task_id: str, green: bool) -> None:
        """CI passed: the PR leaves draft on the forge, since it now waits for people."""
        task = self.tasks.get(task_id)
        if green and task.state == S.REVIEW:
            forge = self.forge_for(task)
            try:
                forge.ready(BRANCH_PREFIX + task.id)
            except ForgeUnavailable as exc:
                log.warning("could not mark the PR of task %s ready on %s: %s", task.id, forge.name, exc)

    def live(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task.state in TERMINAL:
            raise UserInputError(f"task {task.id} already ended ({task.state})")
        return task

    # -- plans

    def propose_plan(self, task_id: str, plan: Plan, actor: Actor) -> PlanView:
        task = self.live(task_id)
        if task.state == S.REQUESTED:
            task = self._record(task, actor, "planning_started", {}, S.PLANNING)
        if task.state != S.PLANNING:
            raise UserInputError(f"task {task.id} is {task.state}; a plan can be proposed while it is requested or "
                                 "planning (after a reviewer rejected the last one)")  # fmt: skip
        task = self._record(task, actor, "plan_proposed", {"plan": plan.model_dump(), "plan_sha256": plan.sha256()},
                            S.PLAN_REVIEW)  # fmt: skip
        if self.settings.plan_review == "auto":
            self._record(task, Actor(kind="system", name="plan-policy"), "plan_approved",
                         {"plan": plan.model_dump(), "plan_sha256": plan.sha256(),
                          "comment": "approved by policy (SHIPWAY_PLAN_REVIEW=auto)"}, S.CODING)  # fmt: skip
        return self.plan(task.id)

    def plan(self, task_id: str) -> PlanView:
        task = self.tasks.get(task_id)
        events = self.tasks.store.events(task.id)
        proposals = [e for e in events if e.action == "plan_proposed"]
        if not proposals:
            return PlanView(task_id=task.id, status="none", task_state=task.state)
        newest = proposals[-1]
        decisions = [e for e in events if e.action in ("plan_approved", "plan_rejected") and e.seq > newest.seq]
        status = {"plan_approved": "approved", "plan_rejected": "changes_requested"}.get(
            decisions[-1].action if decisions else "", "proposed"
        )
        all_decisions = [_decision(e) for e in events if e.action in ("plan_approved", "plan_rejected")]
        return PlanView(task_id=task.id, status=status, plan=Plan.model_validate(newest.payload["plan"]),  # type: ignore[arg-type]
                        plan_sha256=newest.payload["plan_sha256"], proposed_by=newest.actor,
                        decisions=all_decisions, task_state=task.state)  # fmt: skip

    def approve_plan(self, task_id: str, comment: str | None, actor: Actor, plan_sha256: str | None = None) -> PlanView:
        text = _comment(comment, required=False)
        task = self.live(task_id)
        self.check_reviewer(task, actor, "approve_plan")
        view = self.plan(task.id)
        if task.state != S.PLAN_REVIEW or view.plan is None:
            raise self.refuse(
                task, actor, "approve_plan", f"there is no plan waiting for review (task is {task.state})"
            )
        if plan_sha256 and not _same_commit(plan_sha256, view.plan_sha256 or ""):
            raise self.refuse(task, actor, "approve_plan", "the plan changed since you read it; read it again")
        self._record(task, actor, "plan_approved", {"plan": view.plan.model_dump(), "plan_sha256": view.plan_sha256,
                                                    "comment": text}, S.CODING)  # fmt: skip
        return self.plan(task.id)

    def reject_plan(self, task_id: str, comment: str | None, actor: Actor) -> PlanView:
        text = _comment(comment, required=True)
        task = self.live(task_id)
        self.check_reviewer(task, actor, "reject_plan")
        view = self.plan(task.id)
        if task.state != S.PLAN_REVIEW:
            raise self.refuse(task, actor, "reject_plan", f"there is no plan waiting for review (task is {task.state})")
        self._record(task, actor, "plan_rejected", {"plan_sha256": view.plan_sha256, "comment": text}, S.PLANNING)
        return self.plan(task.id)

    # -- pull requests

    def pr(self, task_id: str) -> PullRequest:
        task = self.tasks.get(task_id)
        forge = self.forge_for(task)
        head = self.workspaces.branch_head(task)
        self._import_reviews(task, forge, head)
        task = self.tasks.get(task.id)
        events = self.tasks.store.events(task.id)
        opened = [e for e in events if e.action == "pr_opened"]
        base = PullRequest(task_id=task.id, forge=forge.name, state="none", head_branch=BRANCH_PREFIX + task.id,
                           head_sha=head, ci=_ci_on(events, head), base_branch=task.base_branch,
                           task_state=task.state)  # fmt: skip
        if not opened:
            return base
        last = opened[-1].payload
        merged = next((e for e in reversed(events) if e.action == "pr_merged"), None)
        state = "merged" if merged else "closed" if task.state in TERMINAL else "open"
        approved = _approved_head(events)
        pr = base.model_copy(update={
            "state": state, "number": last.get("number"), "url": last.get("url"), "title": last.get("title"),
            "draft": bool(last.get("draft")) and task.state in (S.PR_OPEN, S.CI),
            "body": last.get("body"), "approved_head": approved,
            "merge_commit": merged.payload.get("merge_commit") if merged else None,
            "decisions": [_decision(e) for e in events if e.action in DECISIONS[:4]],
        })  # fmt: skip
        if state == "open" and task.base_branch:
            conflicts = forge.conflicts(task.base_branch, head)
            pr = pr.model_copy(update={"conflicts": conflicts, "missing": _missing(pr, conflicts)})
        return pr

    def open_pr(self, task_id: str, actor: Actor, title: str | None = None, body: str | None = None) -> PullRequest:
        """Open (or update) the task's PR and start CI on its head: testing -> pr_open -> ci."""
        task = self.live(task_id)
        title = _comment(title, required=False) or task.title
        if len(title) > 200:
            raise UserInputError(f"the title is {len(title)} characters; keep it under 200")
        if task.state != S.TESTING:
            hint = "run_tests first (a PR is opened from tested code)" if task.state == S.CODING else (
                "an approved plan comes first (propose_plan)" if task.state in (S.REQUESTED, S.PLANNING, S.PLAN_REVIEW)
                else "the PR is already open; new edits update it")  # fmt: skip
            raise UserInputError(f"task {task.id} is {task.state}; {hint}")
        if not task.base_branch:
            raise UserInputError(f"task {task.id} started on a detached HEAD; there is no base branch to merge into")
        head = self.workspaces.branch_head(task)
        if head == task.base_commit:
            raise UserInputError(f"task {task.id} has no commits yet; apply_edit first")
        forge = self.forge_for(task)
        text = (_comment(body, required=False) or "") + ("\n\n" if body else "") + self._body(task)
        published = forge.publish(task.id, BRANCH_PREFIX + task.id, task.base_branch, title, text)
        payload = {"title": title, "body": text, "head_sha": head, "base_branch": task.base_branch,
                   "forge": forge.name, "number": published.number, "url": published.url, "draft": published.draft,
                   "chain_sha256": task.head_sha256}  # fmt: skip
        task = self._record(task, actor, "pr_opened", payload, S.PR_OPEN)
        self._record(task, Actor(kind="system", name="ci"), "ci_started", {"commit": head}, S.CI)
        self.ci.status(task.id, 0)  # starts CI on this head in the background
        return self.pr(task.id)

    def _body(self, task: Task) -> str:
        """Request, plan, change summary, tests and the audit-chain hash (markdown; all untrusted text)."""
        plan = self.plan(task.id).plan
        diff = self.workspaces.diff(task.id)
        files = "\n".join(f"- `{f.path}` ({f.action}, +{f.added} -{f.removed})" for f in diff.files) or "- (none)"
        events = self.tasks.store.events(task.id)
        runs = [e for e in events if e.action == "tests_run"]
        url = live_preview_url(events)
        preview = f"\n\n## Preview\n\n{url}" if url else ""
        tests = "(no test run recorded)"
        if runs:
            last = runs[-1].payload
            totals = last.get("totals", {})
            counts = (
                f"{totals.get('passed', 0)} passed, {totals.get('failed', 0)} failed, {totals.get('errors', 0)} errors"
            )
            tests = f"{last.get('status')}: {counts} ({last.get('selection')}, run {last.get('run_id')})"
        return (
            f"## Request\n\n{task.request}\n\n## Plan\n\n{plan.markdown() if plan else '(no plan)'}\n\n"
            f"## Change\n\n{diff.edits} edit(s) on `{BRANCH_PREFIX}{task.id}`:\n{files}\n\n"
            f"## Tests\n\n{tests}{preview}\n\n"
            f"## Audit\n\nTask `{task.id}`, event chain head `{task.head_sha256}` (`shipway task verify {task.id}`)."
        )

    def approve_pr(self, task_id: str, comment: str | None, actor: Actor, head_sha: str | None = None,
                   origin: dict[str, Any] | None = None) -> PullRequest:  # fmt: skip
        """Approve the PR's current head (or refuse when `head_sha`, what the reviewer saw, is no longer it)."""
        text = _comment(comment, required=False)
        task = self.live(task_id)
        self.check_reviewer(task, actor, "approve_pr", origin)
        head = self.workspaces.branch_head(task)
        if head_sha and not _same_commit(head_sha, head):
            raise self.refuse(task, actor, "approve_pr", f"you reviewed {head_sha[:12]} but the head is now "
                                                          f"{head[:12]}; review the new commits", origin)  # fmt: skip
        if task.state != S.REVIEW:
            reason = f"the PR is not waiting for review (task is {task.state})"
            raise self.refuse(task, actor, "approve_pr", reason, origin)
        self._record(task, actor, "pr_approved", {"head_sha": head, "comment": text, **(origin or {})}, S.APPROVED)
        if not (origin or {}).get("forge_review"):  # a forge's own review is on its page already
            self._tell_forge(task, f"**Approved** in Shipway by `{actor.name}` at `{head[:12]}`." + _quote(text))
        return self.pr(task.id)

    def request_changes(self, task_id: str, comment: str | None, actor: Actor,
                        origin: dict[str, Any] | None = None) -> PullRequest:  # fmt: skip
        text = _comment(comment, required=True)
        task = self.live(task_id)
        self.check_reviewer(task, actor, "request_changes", origin)
        if task.state not in (S.REVIEW, S.APPROVED):
            reason = f"the PR is not in review (task is {task.state})"
            raise self.refuse(task, actor, "request_changes", reason, origin)
        head = self.workspaces.branch_head(task)
        self._record(task, actor, "changes_requested", {"head_sha": head, "comment": text, **(origin or {})},
                     S.NEEDS_CHANGES)  # fmt: skip
        if not (origin or {}).get("forge_review"):  # a forge's own review is on its page already
            self._tell_forge(task, f"**Changes requested** in Shipway by `{actor.name}`." + _quote(text))
        return self.pr(task.id)

    def reject_pr(self, task_id: str, comment: str | None, actor: Actor) -> PullRequest:
        text = _comment(comment, required=True)
        task = self.live(task_id)
        self.check_reviewer(task, actor, "reject_pr")
        if task.state not in (S.REVIEW, S.APPROVED, S.NEEDS_CHANGES):
            raise self.refuse(task, actor, "reject_pr", f"there is no PR under review (task is {task.state})")
        self._record(
            task, actor, "pr_rejected", {"head_sha": self.workspaces.branch_head(task), "comment": text}, S.REJECTED
        )
        self._tell_forge(task, f"**Rejected** in Shipway by `{actor.name}`." + _quote(text), close=True)
        return self.pr(task.id)

    # -- reviews left on the forge's own page

    def _import_reviews(self, task: Task, forge: Forge, head: str) -> None:
        """Bring GitHub reviews into the gate, each once, judged like any other decision."""
        if task.state not in (S.CI, S.REVIEW, S.APPROVED, S.NEEDS_CHANGES):
            return
        seen = {e.payload.get("forge_review") for e in self.tasks.store.events(task.id)}
        for review in forge.reviews(BRANCH_PREFIX + task.id):
            if review.id in seen or review.state not in ("APPROVED", "CHANGES_REQUESTED"):
                continue
            self._import_review(task.id, forge.name, review, head)

    def _import_review(self, task_id: str, forge_name: str, review: ForgeReview, head: str) -> None:
        actor = Actor(kind="agent" if review.by_bot else "human", name=f"{forge_name}:{review.login}"[:100])
        origin = {"forge_review": review.id, "via": forge_name}
        approve = review.state == "APPROVED"
        task = self.tasks.get(task_id)
        if any(e.payload.get("forge_review") == review.id for e in self.tasks.store.events(task.id)):
            return  # imported meanwhile (deciding re-reads the PR, which imports the rest)
        stale = bool(review.commit) and not _same_commit(review.commit or "", head)
        if not (review.by_bot or stale or task.state in ((S.REVIEW,) if approve else (S.REVIEW, S.APPROVED))):
            return  # not reviewable yet (CI running): imported on a later look
        text = review.body[:MAX_COMMENT_CHARS].replace("\x00", "")
        try:
            if approve:
                self.approve_pr(task.id, text, actor, review.commit, origin)
            elif stale:
                raise self.refuse(task, actor, "request_changes", f"the review is of {str(review.commit)[:12]}, "
                                   f"not the head {head[:12]}", origin)  # fmt: skip
            else:
                self.request_changes(task.id, text or f"changes requested on {forge_name}", actor, origin)
        except GateRefused:
            pass  # recorded with its reason, and never imported again

    def merge_pr(self, task_id: str, actor: Actor) -> PullRequest:
        """Merge when the current head is approved, CI on it is green and nothing conflicts; else say what is not."""
        task = self.tasks.get(task_id)
        if task.state == S.MERGED:
            raise self.refuse(task, actor, "merge_pr", "the PR is already merged")
        task = self.live(task_id)
        pr = self.pr(task.id)
        missing = pr.missing if pr.state == "open" else ["no pull request is open (open_pr)"]
        if task.state != S.APPROVED and not any("approv" in m for m in missing):
            missing = [f"no approval: the task is {task.state}", *missing]
        if missing:
            if task.state == S.APPROVED and pr.approved_head != pr.head_sha:
                self._record(task, Actor(kind="system", name="gate"), "approval_lost",
                             {"approved_head": pr.approved_head, "head_sha": pr.head_sha}, S.NEEDS_CHANGES)  # fmt: skip
            raise self.refuse(task, actor, "merge_pr", "; ".join(missing))
        assert task.base_branch is not None
        try:
            merged = self.forge_for(task).merge(BRANCH_PREFIX + task.id, task.base_branch, pr.head_sha,
                                                f"Merge {BRANCH_PREFIX}{task.id}: {task.title}")  # fmt: skip
        except MergeRefused as exc:
            raise self.refuse(task, actor, "merge_pr", str(exc)) from exc
        payload = {"head_sha": pr.head_sha, "merge_commit": merged.commit, "method": merged.method,
                   "base_branch": task.base_branch}  # fmt: skip
        self._record(task, actor, "pr_merged", payload, S.MERGED)
        return self.pr(task.id)


def live_preview_url(events: list[Event]) -> str | None:
    """The URL of the task's preview while it runs: the newest lifecycle event, if it is a live one."""
    lifecycle = ("preview_started", "preview_ready", "preview_stopped", "preview_failed", "preview_expired")
    previews = [e for e in events if e.action in lifecycle]
    if previews and previews[-1].action in ("preview_started", "preview_ready"):
        url = previews[-1].payload.get("url")
        return str(url) if url else None
    return None


def _ci_on(events: list[Event], head: str) -> Literal["none", "pending", "success", "failure"]:
    for event in reversed(events):
        if event.payload.get("commit") != head:
            continue
        if event.action == "ci_passed":
            return "success"
        if event.action == "ci_failed":
            return "failure"
        if event.action == "ci_started":
            return "pending"
    return "none"


def _approved_head(events: list[Event]) -> str | None:
    """The head the newest decision approved, or None when the newest decision was anything else."""
    newest = next((e for e in reversed(events) if e.action in DECISIONS), None)
    return newest.payload.get("head_sha") if newest is not None and newest.action == "pr_approved" else None


def _missing(pr: PullRequest, conflicts: list[str]) -> list[str]:
    missing = []
    if pr.approved_head is None:
        missing.append("no approval of the current head by a human reviewer")
    elif pr.approved_head != pr.head_sha:
        missing.append(f"the approval covers {pr.approved_head[:12]} but the head is now {pr.head_sha[:12]}")
    if pr.ci != "success":
        missing.append(f"CI is not green on {pr.head_sha[:12]} ({pr.ci})")
    if conflicts:
        missing.append(f"conflicts with {pr.base_branch} in: {', '.join(conflicts[:10])}")
    return missing


def _quote(text: str | None) -> str:
    return "\n\n" + "\n".join(f"> {line}" for line in text.splitlines()) if text else ""


def _same_commit(given: str, actual: str) -> bool:
    """`given` names `actual`: the whole hash, or an abbreviation of 7+ characters as git prints them."""
    given = given.strip().lower()
    return len(given) >= 7 and actual.startswith(given)
