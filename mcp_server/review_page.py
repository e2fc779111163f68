"""The review page's HTML: the task list, one task's page, the login form.

Everything shown comes from requests, repositories and tool output, which are untrusted: every
value is HTML-escaped (the diff by Pygments, which escapes as it highlights), links are only
followed for http(s) URLs, and the page loads no scripts (the server's CSP forbids them).
Rendering is pure: `review_web.py` gathers a `TaskView` and checks who may act.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote, urlparse

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from mcp_server.agent_journal import spend_of
from mcp_server.previews import PreviewStatus
from mcp_server.review_gate import PlanView, PullRequest
from mcp_server.tasks.model import Event, Task, TaskState
from mcp_server.tasks.service import TaskPage
from tools.testrun.report import TestReport

MAX_DIFF_CHARS = 300_000
_FORMATTER = HtmlFormatter(nowrap=False, cssclass="hl")
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: .7rem 2rem; display: flex; gap: 1rem; align-items: center; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header form { margin-left: auto; }
main { max-width: 1100px; margin: 1.5rem auto; padding: 0 1rem; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 1rem 1.2rem; margin-bottom: 1rem; }
h1 { font-size: 1.35rem; margin: .2rem 0 1rem; } h2 { font-size: 1.05rem; margin: 0 0 .6rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, monospace; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
.hl pre { white-space: pre; overflow-x: auto; padding: .6rem; background: #f6f8fa; border-radius: 6px; }
.state { padding: .1rem .5rem; border-radius: 1rem; background: #eaeef2; font-size: 12px; }
.ok { color: #1a7f37; } .bad { color: #cf222e; } .muted { color: #59636e; }
.notice { border-left: 4px solid #0969da; } .error { border-left: 4px solid #cf222e; }
textarea { width: 100%; min-height: 4.5rem; font: inherit; box-sizing: border-box; }
.actions { display: flex; gap: .6rem; margin-top: .6rem; flex-wrap: wrap; }
button { font: inherit; padding: .35rem .9rem; border-radius: 6px; border: 1px solid #d0d7de; cursor: pointer; }
button.approve { background: #1f883d; color: #fff; border-color: #1a7f37; }
button.reject { background: #fff; color: #cf222e; }
.metrics { display: flex; gap: 1rem; flex-wrap: wrap; } .metric { min-width: 12rem; }
.big { font-size: 1.8rem; font-weight: 600; }
dl { display: grid; grid-template-columns: 9rem 1fr; gap: .25rem .8rem; margin: 0; } dd { margin: 0; }
""" + _FORMATTER.get_style_defs(".hl")  # type: ignore[no-untyped-call]


@dataclass
class TaskView:
    """What one task page shows; each part may be missing, with the reason in `problems`."""

    task: Task
    events: list[Event]
    plan: PlanView | None = None
    pr: PullRequest | None = None
    diff: str | None = None
    diff_truncated: bool = False
    tests: TestReport | None = None
    preview_url: str | None = None
    preview: PreviewStatus | None = None
    problems: dict[str, str] = field(default_factory=dict)


def _safe_link(url: str | None, text: str | None = None) -> str:
    if not url:
        return ""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return escape(url)
    return f'<a href="{escape(url, quote=True)}" rel="noopener noreferrer">{escape(text or url)}</a>'


def _task_href(task_id: str) -> str:
    return f"/review/tasks/{quote(task_id, safe='')}"


def layout(title: str, body: str, reviewer: str | None = None, csrf: str = "", notice: str = "",
           error: str = "") -> str:  # fmt: skip
    who = ""
    if reviewer:
        who = (f'<span>{escape(reviewer)}</span><form method="post" action="/review/logout">'
               f'<input type="hidden" name="csrf" value="{escape(csrf, quote=True)}">'
               '<button type="submit">Log out</button></form>')  # fmt: skip
    flash = f'<section class="notice" role="status">{escape(notice)}</section>' if notice else ""
    flash += f'<section class="error" role="alert">{escape(error)}</section>' if error else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Shipway review</title><style>{_STYLE}</style></head><body>"
        '<header><a href="/review">Shipway review</a><a href="/review/metrics">Metrics</a>'
        f"{who}</header><main>{flash}{body}</main></body></html>"
    )


def render_login(error: str = "", next_path: str = "/review") -> str:
    body = (
        "<section><h1>Reviewer login</h1>"
        '<p class="muted">Paste the token <code>shipway reviewer add NAME</code> printed for you.</p>'
        '<form method="post" action="/review/login">'
        f'<input type="hidden" name="next" value="{escape(next_path, quote=True)}">'
        '<label>Token <input type="password" name="token" autocomplete="current-password" size="50" required>'
        '</label> <button type="submit" class="approve">Log in</button></form></section>'
    )
    return layout("Log in", body, error=error)


def render_task_list(page: TaskPage, repo: str, reviewer: str, csrf: str) -> str:
    rows = "\n".join(
        "<tr>"
        f'<td><a href="{_task_href(t.id)}"><code>{escape(t.id)}</code></a></td>'
        f"<td>{escape(t.title)}</td>"
        f'<td><span class="state">{escape(t.state.value)}</span></td>'
        f"<td>{escape(t.created_by)}</td>"
        f'<td class="muted">{escape(t.updated_at.strftime("%Y-%m-%d %H:%M UTC"))}</td>'
        "</tr>"
        for t in page.tasks
    )
    body = (
        f"<table><thead><tr><th>Task</th><th>Request</th><th>State</th><th>Started by</th><th>Updated</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if page.tasks
        else '<p class="muted">No tasks yet. Start one with <code>shipway task start "…"</code> '
        "or the <code>start_task</code> tool.</p>"
    )
    shown = f"{len(page.tasks)} of {page.total} tasks"
    return layout(
        "Tasks", f'<section><h1>Tasks</h1><p class="muted">{escape(repo)} · {shown}</p>{body}</section>', reviewer, csrf
    )


def _pre(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


def _plan_section(view: TaskView, csrf: str) -> str:
    plan = view.plan
    if plan is None or plan.plan is None:
        reason = escape(view.problems.get("plan", "No plan yet."))
        return f'<section id="plan"><h2>Plan</h2><p class="muted">{reason}</p></section>'
    decisions = "".join(
        f"<li>{escape(d.by)} <b>{escape(d.action)}</b>{': ' + escape(d.comment) if d.comment else ''}</li>"
        for d in plan.decisions
    )
    form = ""
    if view.task.state == TaskState.PLAN_REVIEW:
        form = _decision_form(view.task.id, csrf, "plan_sha256", plan.plan_sha256 or "", [
            ("approve_plan", "Approve plan", "approve"), ("reject_plan", "Send plan back", "reject"),
        ])  # fmt: skip
    return (
        f'<section id="plan"><h2>Plan <span class="state">{escape(plan.status)}</span></h2>'
        f'<p class="muted">proposed by {escape(plan.proposed_by or "?")} · sha256 <code>'
        f"{escape((plan.plan_sha256 or '')[:16])}</code></p>{_pre(plan.plan.markdown())}"
        f"{'<ul>' + decisions + '</ul>' if decisions else ''}{form}</section>"
    )


def _pr_section(view: TaskView, csrf: str) -> str:
    pr = view.pr
    if pr is None or pr.state == "none":
        reason = view.problems.get("pr", "No pull request yet.")
        return f'<section id="pr"><h2>Pull request</h2><p class="muted">{escape(reason)}</p></section>'
    ci_class = {"success": "ok", "failure": "bad"}.get(pr.ci, "muted")
    rows = [
        ("State", f'<span class="state">{escape(pr.state)}</span>' + (" (draft)" if pr.draft else "")),
        ("Title", escape(pr.title or "")),
        ("Forge", escape(pr.forge) + (" · " + _safe_link(pr.url, f"#{pr.number}") if pr.url else "")),
        ("Branch", f"<code>{escape(pr.head_branch)}</code> → <code>{escape(pr.base_branch or '?')}</code>"),
        ("Head", f"<code>{escape(pr.head_sha[:12])}</code>"),
        ("Approved head", f"<code>{escape(pr.approved_head[:12])}</code>" if pr.approved_head else "none"),
        ("CI", f'<span class="{ci_class}" id="ci-state">{escape(pr.ci)}</span>'),
        ("Preview", _safe_link(view.preview_url) or '<span class="muted">none</span>'),
    ]
    if pr.conflicts:
        rows.append(("Conflicts", escape(", ".join(pr.conflicts))))
    if pr.merge_commit:
        rows.append(("Merged as", f"<code>{escape(pr.merge_commit[:12])}</code>"))
    if pr.state == "open":
        mergeable = '<span class="ok">ready to merge</span>' if not pr.missing else (
            '<span class="bad">' + escape("; ".join(pr.missing)) + "</span>")  # fmt: skip
        rows.append(("Merge", mergeable))
    table = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    form = ""
    if view.task.state == TaskState.REVIEW:
        form = _decision_form(view.task.id, csrf, "head_sha", pr.head_sha, [
            ("approve_pr", "Approve", "approve"), ("request_changes", "Request changes", ""),
            ("reject_pr", "Reject", "reject"),
        ])  # fmt: skip
    elif view.task.state in (TaskState.APPROVED, TaskState.NEEDS_CHANGES):
        actions = [("request_changes", "Request changes", "")] if view.task.state == TaskState.APPROVED else []
        form = _decision_form(
            view.task.id, csrf, "head_sha", pr.head_sha, [*actions, ("reject_pr", "Reject", "reject")]
        )
    if pr.state == "open" and view.task.state == TaskState.APPROVED and not pr.missing:
        form += (f'<form method="post" action="{_task_href(view.task.id)}/merge">'
                 f'<input type="hidden" name="csrf" value="{escape(csrf, quote=True)}">'
                 '<div class="actions"><button type="submit" class="approve">Merge</button></div></form>')  # fmt: skip
    return f'<section id="pr"><h2>Pull request</h2><dl>{table}</dl>{form}</section>'


def _preview_section(view: TaskView, csrf: str) -> str:
    """The preview: its state and link, and the approval an agent's S3 request waits for."""
    preview = view.preview
    if preview is None or preview.state == "none":
        reason = view.problems.get("preview", "No preview. `shipway preview start TASK` starts one.")
        return f'<section id="preview"><h2>Preview</h2><p class="muted">{escape(reason)}</p></section>'
    rows = [("State", f'<span class="state" id="preview-state">{escape(preview.state)}</span> '
                      f"({escape(preview.target or '?')})")]  # fmt: skip
    if preview.url:
        rows.append(("Open", _safe_link(preview.url)))
    if preview.commit:
        stale = ' <span class="bad">stale: the branch has newer commits</span>' if preview.stale else ""
        rows.append(("Commit", f"<code>{escape(preview.commit[:12])}</code>{stale}"))
    if preview.expires_at and preview.state in ("starting", "ready"):
        rows.append(("Expires", escape(preview.expires_at.strftime("%Y-%m-%d %H:%M UTC"))))
    if preview.reason:
        rows.append(("Why", escape(preview.reason)))
    table = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    form = ""
    if preview.state == "awaiting_approval" and preview.commit:
        form = (f'<form method="post" action="{_task_href(view.task.id)}/decide">'
                f'<input type="hidden" name="csrf" value="{escape(csrf, quote=True)}">'
                f'<input type="hidden" name="head_sha" value="{escape(preview.commit, quote=True)}">'
                '<div class="actions"><button type="submit" name="action" value="approve_preview" class="approve">'
                "Approve and deploy the preview</button></div></form>")  # fmt: skip
    return f'<section id="preview"><h2>Preview</h2><dl>{table}</dl>{form}</section>'


def _decision_form(task_id: str, csrf: str, bound_name: str, bound_value: str,
                   actions: list[tuple[str, str, str]]) -> str:  # fmt: skip
    buttons = "".join(
        f'<button type="submit" name="action" value="{escape(value)}" class="{cls}">{escape(label)}</button>'
        for value, label, cls in actions
    )
    return (
        f'<form method="post" action="{_task_href(task_id)}/decide" class="decide">'
        f'<input type="hidden" name="csrf" value="{escape(csrf, quote=True)}">'
        f'<input type="hidden" name="{bound_name}" value="{escape(bound_value, quote=True)}">'
        '<label for="comment">Comment (required to request changes or reject)</label>'
        '<textarea id="comment" name="comment" maxlength="10000"></textarea>'
        f'<div class="actions">{buttons}</div></form>'
    )


def _diff_section(view: TaskView) -> str:
    if view.diff is None:
        reason = view.problems.get("diff", "No change yet.")
        return f'<section id="diff"><h2>Diff</h2><p class="muted">{escape(reason)}</p></section>'
    text = view.diff[:MAX_DIFF_CHARS]
    cut = view.diff_truncated or len(view.diff) > MAX_DIFF_CHARS
    note = '<p class="muted">The diff is cut short here; <code>shipway pr show</code> has all of it.</p>' if cut else ""
    body = highlight(text, DiffLexer(), _FORMATTER) if text.strip() else '<p class="muted">The diff is empty.</p>'
    return f'<section id="diff"><h2>Diff</h2>{body}{note}</section>'


def _tests_section(view: TaskView) -> str:
    report = view.tests
    if report is None:
        reason = escape(view.problems.get("tests", "No test run yet."))
        return f'<section id="tests"><h2>Tests</h2><p class="muted">{reason}</p></section>'
    t = report.totals
    cls = {"passed": "ok", "failed": "bad"}.get(report.status, "muted")
    lines = [
        f'<p><span class="{cls}">{escape(report.status)}</span> · {t.passed} passed, {t.failed} failed, '
        f"{t.errors} errors, {t.skipped} skipped · {escape(report.selection)} selection · run "
        f"<code>{escape(report.run_id)}</code></p>"
    ]
    if report.reason:
        lines.append(_pre(report.reason))
    for failure in report.failures[:30]:
        where = f"{failure.file}:{failure.line}" if failure.file and failure.line else failure.file or ""
        versus = f" ({failure.versus_base})" if failure.versus_base else ""
        lines.append(f"<details><summary><code>{escape(failure.id)}</code> {escape(where)}{escape(versus)}</summary>"
                     f"{_pre(failure.message or '')}{_pre(failure.traceback or '')}</details>")  # fmt: skip
    return f'<section id="tests"><h2>Tests</h2>{"".join(lines)}</section>'


def _summarise(payload: dict[str, Any]) -> str:
    keys = ("comment", "reason", "attempt", "head_sha", "commit", "status", "run_id", "title", "url", "via")
    parts = []
    for key in keys:
        value = payload.get(key)
        if value in (None, "", []):
            continue
        text = str(value)
        parts.append(f"{key}={text[:12] if key in ('head_sha', 'commit') else text[:200]}")
    return ", ".join(parts)


def _events_section(view: TaskView) -> str:
    rows = "".join(
        f'<tr><td>{e.seq}</td><td class="muted">{escape(e.at.strftime("%Y-%m-%d %H:%M:%S"))}</td>'
        f"<td>{escape(e.actor)}</td><td><code>{escape(e.action)}</code></td><td>{escape(e.to_state.value)}</td>"
        f"<td>{escape(_summarise(e.payload))}</td></tr>"
        for e in view.events
    )
    return (
        '<section id="events"><h2>Event log</h2><table><thead><tr><th>#</th><th>When</th><th>Who</th>'
        f"<th>Action</th><th>State</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _agents_row(view: TaskView) -> str:
    """For a task Shipway's agents drive: what their work has cost so far."""
    if not view.task.autonomous:
        return ""
    spend = spend_of(view.events)
    tokens = spend.input_tokens + spend.output_tokens
    return f"<dt>Agents</dt><dd>{spend.steps} model calls, {tokens:,} tokens, ${spend.cost_usd:.4f}</dd>"


def render_task(view: TaskView, reviewer: str, csrf: str, notice: str = "", error: str = "") -> str:
    task = view.task
    head = (
        f'<section><h1>{escape(task.title)} <span class="state" id="task-state">{escape(task.state.value)}</span>'
        f"</h1><dl><dt>Task</dt><dd><code>{escape(task.id)}</code></dd><dt>Started by</dt><dd>"
        f"{escape(task.created_by)}</dd><dt>Base</dt><dd><code>{escape(task.base_branch or '(detached)')}</code> @ "
        f"<code>{escape(task.base_commit[:12])}</code></dd>{_agents_row(view)}</dl>"
        f"<h2>Request</h2>{_pre(task.request)}</section>"
    )
    body = head + _plan_section(view, csrf) + _pr_section(view, csrf) + _preview_section(view, csrf)
    body += _diff_section(view)
    body += _tests_section(view) + _events_section(view)
    return layout(task.title, body, reviewer, csrf, notice, error)
