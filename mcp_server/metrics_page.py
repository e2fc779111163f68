"""The review site's metrics page: delivery numbers and charts, drawn as inline SVG.

The site's CSP allows no scripts, so the charts are plain SVG rendered here; each bar carries
a `<title>` (its task, date and value) that browsers show on hover. Task titles are untrusted
text and are escaped like everything else on the site.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from mcp_server.metrics import Metrics, Rate, TaskMetrics
from mcp_server.review_page import layout

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 960, 200, 64, 24, 10


def _rate(name: str, rate: Rate, what: str) -> str:
    shown = f"{rate.percent:.0f}%" if rate.percent is not None else "n/a"
    return (f'<div class="metric"><div class="big">{shown}</div><div>{escape(name)}</div>'
            f'<div class="muted">{rate.hits} of {rate.total} {escape(what)}</div></div>')  # fmt: skip


def bar_chart(title: str, tasks: list[TaskMetrics], value: Callable[[TaskMetrics], float | None],
              label: Callable[[float], str]) -> str:  # fmt: skip
    points = [(t, v) for t in tasks if (v := value(t)) is not None]
    if not points:
        return f'<section><h2>{escape(title)}</h2><p class="muted">No data yet.</p></section>'
    top = max(v for _, v in points) or 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM
    step = plot_w / len(points)
    bars = []
    for n, (task, v) in enumerate(points):
        h = max(1.0, plot_h * v / top)
        x, y = LEFT + n * step, TOP + plot_h - h
        tip = f"{task.id} · {task.created_at:%Y-%m-%d %H:%M} · {label(v)} · {task.title}"
        bars.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" height="{h:.1f}" '
                    f'fill="#0969da"><title>{escape(tip)}</title></rect>')  # fmt: skip
    axis = (f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" stroke="#8c959f"/>'
            f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11">{escape(label(top))}</text>'
            f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>'
            f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="11">{points[0][0].created_at:%Y-%m-%d}</text>'
            f'<text x="{WIDTH - 8}" y="{HEIGHT - 6}" text-anchor="end" font-size="11">'
            f"{points[-1][0].created_at:%Y-%m-%d}</text>")  # fmt: skip
    return (f'<section><h2>{escape(title)}</h2><svg role="img" aria-label="{escape(title, quote=True)}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%">{axis}{"".join(bars)}</svg>'
            f'<p class="muted">{len(points)} task(s), oldest first; hover a bar for its task.</p>'
            "</section>")  # fmt: skip


def _tokens(value: float) -> str:
    return f"{value:,.0f} tokens"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5_400 else f"{seconds / 3_600:.1f} h"


def render_metrics(metrics: Metrics, reviewer: str, csrf: str) -> str:
    tasks = metrics.tasks
    tokens = sum(t.tokens for t in tasks)
    cost = sum(t.cost_usd for t in tasks)
    cards = (
        '<section><h1>Metrics</h1><div class="metrics">'
        + _rate("plan acceptance", metrics.plan_acceptance, "human plan decisions approved")
        + _rate("PR acceptance", metrics.pr_acceptance, "finished PRs merged")
        + _rate("CI self-heal", metrics.ci_self_heal, "tasks with red CI went green")
        + f'<div class="metric"><div class="big">{len(tasks)}</div><div>tasks</div>'
        f'<div class="muted">{tokens:,} tokens · ${cost:.2f}</div></div>'
        + "</div></section>"
    )  # fmt: skip
    charts = (
        bar_chart("Lead time per merged task (request to merge)", tasks, lambda t: t.lead_time_s, _minutes)
        + bar_chart(
            "Agent tokens per task",
            tasks,
            lambda t: float(t.tokens) if t.agent_steps else None,
            lambda v: f"{v:,.0f} tokens",
        )
        + bar_chart("Agent cost per task", tasks, lambda t: t.cost_usd if t.cost_usd else None, lambda v: f"${v:.4f}")
    )
    return layout("Metrics", cards + charts, reviewer, csrf)
