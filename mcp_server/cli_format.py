"""Plain-text renderings of the models the CLI prints (--json prints the models themselves).

Requests, titles and reasons come from MCP clients and repositories: untrusted text. Before
it reaches a terminal, every control character but newline and tab is shown escaped, so an
ANSI sequence in a request cannot recolour, move the cursor or rewrite what a reviewer sees.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, computed_field

from mcp_server.ci import CIStatus
from mcp_server.review_gate import PlanView, PullRequest
from mcp_server.tasks.chain import ChainReport
from mcp_server.tasks.model import Event, Task
from mcp_server.tasks.service import TaskLog, TaskPage
from tools.edits.report import EditReport
from tools.search import IndexReport, SearchReport
from tools.task_edits import TaskDiff
from tools.testrun.report import TestReport

_TIME = "%Y-%m-%d %H:%M:%S"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """`text` with terminal control characters made visible (ESC becomes \\x1b)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class VerifyResult(BaseModel):
    reports: list[ChainReport]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.reports)


def task_text(task: Task) -> str:
    lines = [
        f"task      {task.id}",
        f"state     {task.state}",
        f"title     {safe(task.title)}",
        f"repo      {task.repo}",
        f"base      {task.base_branch or '(detached)'} @ {task.base_commit[:12]}",
        f"by        {task.created_by}",
        f"created   {task.created_at.strftime(_TIME)} UTC",
        f"updated   {task.updated_at.strftime(_TIME)} UTC",
    ]
    if task.reason:
        lines.append(f"reason    {safe(task.reason)}")
    return "\n".join([*lines, "", safe(task.request)])


def page_text(page: TaskPage) -> str:
    if not page.tasks:
        return "no tasks" if page.total == 0 else f"no tasks at offset {page.offset} (total {page.total})"
    rows = [f"{t.id}  {t.state:<13} {t.updated_at.strftime(_TIME)}  {safe(t.title)}" for t in page.tasks]
    shown_to = page.offset + len(page.tasks)
    if shown_to < page.total:
        rows.append(f"… {page.total - shown_to} more (use --offset {shown_to})")
    return "\n".join(rows)


def event_line(e: Event) -> str:
    """One event as a line: when, who, what, the move, and for agent work what it did and cost."""
    move = f"{e.from_state or ''} -> {e.to_state}" if e.from_state != e.to_state else str(e.to_state)
    line = f"{e.seq:>4}  {e.at.strftime(_TIME)}  {safe(e.actor):<20} {safe(e.action):<12} {move}  {e.sha256[:12]}"
    detail = _event_detail(e)
    return f"{line}  {safe(detail)}" if detail else line


def _event_detail(e: Event) -> str:
    p = e.payload
    if e.action == "agent_step":
        calls = ", ".join(f"{c['name']}{'' if c['ok'] else ' (failed)'}" for c in p.get("calls", [])) or "answered"
        usage = p.get("usage", {})
        tokens = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        cost = f", ${p['cost_usd']:.4f}" if p.get("cost_usd") else ""
        return f"round {p.get('round')} step {p.get('step')}: {calls} ({tokens:,} tokens{cost})"
    if e.action in ("agent_round_started", "agent_round_finished"):
        return f"{p.get('agent')} round {p.get('round')}: {p.get('reason') or p.get('outcome')}"
    for key in ("reason", "error", "comment", "summary"):
        if isinstance(p.get(key), str) and p[key]:
            return str(p[key]).splitlines()[0][:160]
    return ""


def log_text(log: TaskLog) -> str:
    rows = [event_line(e) for e in log.events]
    status = "chain ok" if log.chain.ok else f"CHAIN BROKEN: {safe(log.chain.problem or '')}"
    rows.append(f"{log.total} events; {status}")
    return "\n".join(rows)


def verify_text(result: VerifyResult) -> str:
    lines = [
        f"{r.task_id}  ok ({r.events_checked} events)" if r.ok else f"{r.task_id}  BROKEN: {safe(r.problem or '')}"
        for r in result.reports
    ]
    if len(result.reports) != 1:
        broken = sum(not r.ok for r in result.reports)
        lines.append(f"{len(result.reports)} tasks verified, {broken} broken")
    return "\n".join(lines)


def search_text(report: SearchReport) -> str:
    lines = [f"# {note}" for note in report.notes]
    for number, hit in enumerate(report.hits, start=1):
        lines.append(f"{number:>3}. {safe(hit.path)}:{hit.start_line}-{hit.end_line}  ({', '.join(hit.signals)})")
        lines.extend(f"       {safe(line)}" for line in hit.snippet.splitlines()[:6])
    if not report.hits:
        lines.append("no matches")
    return "\n".join(lines)


def index_text(report: IndexReport) -> str:
    return (
        f"indexed {report.commit[:12]}: {report.files:,} files ({report.skipped:,} skipped), "
        f"{report.new_blobs:,} new and {report.removed_blobs:,} removed blobs in {report.seconds:.2f}s; "
        f"semantic index {report.semantic}"
    )


def edit_text(report: EditReport) -> str:
    verb = {"applied": "would apply" if report.dry_run else "applied", "already_applied": "already applied"}
    lines = [f"{verb.get(report.status, report.status)}: {len(report.files)} file(s)"]
    for change in report.files:
        moved = f" (from {safe(change.old_path)})" if change.old_path else ""
        lines.append(f"  {change.action:9} {safe(change.path)}{moved}  +{change.added} -{change.removed}")
    for hunk in report.hunks:
        where = f" at line {hunk.line}" if hunk.line else ""
        lines.append(f"  {safe(hunk.file)} hunk {hunk.hunk}: {hunk.status} ({hunk.method or '-'}){where}")
        lines.extend(f"    note: {safe(note)}" for note in hunk.notes)
    lines.extend(f"  warning: {safe(w)}" for w in report.warnings)
    if report.commit:
        lines.append(f"  commit {report.commit}")
    return "\n".join(lines)


def diff_text(diff: TaskDiff) -> str:
    head = [f"{diff.edits} edit(s); {diff.base_commit[:12]}..{diff.head_commit[:12]}"]
    head += [f"  {c.action:9} {safe(c.path)}  +{c.added} -{c.removed}" for c in diff.files]
    if diff.uncommitted:
        head.append("uncommitted (from commands): " + ", ".join(safe(p) for p in diff.uncommitted[:20]))
    return "\n".join(head) + ("\n\n" + safe(diff.diff) if diff.diff else "")


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f}s"


def test_report_text(report: TestReport) -> str:
    """A test report for a terminal: the verdict first, then each failure with where and why."""
    totals = report.totals
    counts = (
        f"{totals.passed} passed, {totals.failed} failed, {totals.errors} errors, {totals.skipped} skipped"
        if report.per_test
        else f"exit {report.exit_code} (no per-test results)"
    )
    lines = [f"{report.status.upper()}  {counts} in {_seconds(report.duration_ms)}   run {report.run_id}"]
    lines.append(f"  {report.framework}: {safe(report.command)}" if report.command else f"  {report.framework}")
    lines.append(f"  selection {report.selection}: {safe(report.selection_reason)}")
    if report.setup:
        how = "cached" if report.setup.cached else f"exit {report.setup.exit_code}"
        net = "network" if report.setup.network else "no network"
        lines.append(f"  setup ({net}, {how}): {safe(report.setup.command)}")
    if report.reason:
        lines.append(f"  reason: {safe(report.reason)}")
    for failure in report.failures:
        where = f"{failure.file}:{failure.line}" if failure.file and failure.line else failure.file or ""
        tag = f" [{failure.versus_base}]" if failure.versus_base else ""
        phase = f" ({failure.phase})" if failure.phase != "call" else ""
        lines.append(f"  ✗ {safe(failure.id)}{phase}  {safe(where)}{tag}")
        if failure.message:
            lines += [f"      {safe(line)}" for line in failure.message.splitlines()[:4]]
    if report.failures_omitted:
        lines.append(f"  … and {report.failures_omitted} more failures")
    if report.baseline:
        base = report.baseline
        if base.error:
            lines.append(f"  base {base.commit[:12]}: not compared: {safe(base.error)}")
        else:
            cached = " (cached)" if base.cached else ""
            counts = (
                f"{len(base.newly_failing)} newly failing, {len(base.newly_passing)} newly passing, "
                f"{len(base.still_failing)} still failing"
            )
            lines.append(f"  base {base.commit[:12]}{cached}: {counts}")
    if report.log_tail and (report.status == "error" or not report.per_test):
        lines += ["", safe(report.log_tail)]
    lines.append(f"  full log: shipway test log {report.run_id}")
    return "\n".join(lines)


def ci_text(status: CIStatus) -> str:
    lines = [f"CI {status.state.upper()}  {status.provider} on {status.commit[:12]}  (task now {status.task_state})"]
    if status.summary:
        lines.append(f"  {safe(status.summary)}")
    for check in status.checks:
        url = f"  {safe(check.url)}" if check.url else ""
        lines.append(f"  {check.state:<8} {safe(check.name)}{url}")
    if status.report and status.report.failures:
        lines.append(test_report_text(status.report))
    return "\n".join(lines)


def plan_text(view: PlanView) -> str:
    lines = [f"plan      {view.status}  (task {view.task_id} is {view.task_state})"]
    if view.plan is not None:
        lines += [f"sha256    {view.plan_sha256}", f"by        {view.proposed_by}", "", safe(view.plan.markdown())]
    for decision in view.decisions:
        comment = f": {safe(decision.comment)}" if decision.comment else ""
        lines.append(f"  {decision.at.strftime(_TIME)}  {decision.by}  {decision.action}{comment}")
    return "\n".join(lines)


def pr_text(pr: PullRequest) -> str:
    if pr.state == "none":
        return f"task {pr.task_id} has no pull request yet (task is {pr.task_state}; open one with `shipway pr open`)"
    where = f" #{pr.number}" if pr.number else ""
    where += " (draft)" if pr.draft else ""
    lines = [
        f"PR{where}   {pr.state}  {safe(pr.title or '')}",
        f"task      {pr.task_id} ({pr.task_state})",
        f"branch    {pr.head_branch} @ {pr.head_sha[:12]} -> {pr.base_branch}",
        f"forge     {pr.forge}{'  ' + safe(pr.url) if pr.url else ''}",
        f"approved  {pr.approved_head[:12] if pr.approved_head else 'no'}",
        f"ci        {pr.ci}",
    ]
    if pr.conflicts:
        lines.append(f"conflicts {', '.join(safe(c) for c in pr.conflicts)}")
    if pr.merge_commit:
        lines.append(f"merged as {pr.merge_commit[:12]}")
    if pr.state == "open":
        lines.append("mergeable yes" if not pr.missing else "missing   " + "; ".join(safe(m) for m in pr.missing))
    for decision in pr.decisions:
        comment = f": {safe(decision.comment)}" if decision.comment else ""
        lines.append(f"  {decision.at.strftime(_TIME)}  {decision.by}  {decision.action}{comment}")
    return "\n".join(lines)
