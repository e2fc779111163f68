"""The review page (read-only for now): every task with its state, newest first.

Everything shown comes from requests and repositories, which are untrusted: every value is
HTML-escaped, and the page loads no scripts.
"""

from __future__ import annotations

from html import escape

from mcp_server.tasks.service import TaskPage

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de; }
code { font: 12px ui-monospace, monospace; }
.state { padding: .1rem .45rem; border-radius: 1rem; background: #eaeef2; }
.muted { color: #59636e; }
"""


def render_task_list(page: TaskPage, repo: str) -> str:
    rows = "\n".join(
        "<tr>"
        f"<td><code>{escape(t.id)}</code></td>"
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
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Shipway review</title>"
        f"<style>{_STYLE}</style></head><body>"
        f'<h1>Shipway review</h1><p class="muted">{escape(repo)} · {shown}</p>{body}'
        '<p class="muted">This page lists tasks; approving and rejecting changes here arrives with the '
        "review gate.</p></body></html>"
    )
