"""Delivery metrics: what `collect()` computes from task logs, and the review site's metrics page.

Task histories are written straight through the real `TaskService` and SQLite store, walking
only legal moves of the state machine (no agents, no sandbox): each `record` is checked by
`check_transition` exactly as when the gate or CI records it. The page is then read over real
HTTP from a `shipway serve --http` subprocess serving the same store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mcp_server.app import ServerDeps, open_deps
from mcp_server.ci import record_verdict
from mcp_server.config import load_settings
from mcp_server.errors import InvalidTransition
from mcp_server.metrics import Metrics, Rate, TaskMetrics, collect, task_metrics
from mcp_server.reviewers import ReviewerStore
from mcp_server.tasks.model import Actor, Event, Task, TaskState
from tests.helpers.gitrepo import init_repo
from tests.helpers.review_site import SERVER_ENV, clean_env
from tests.helpers.servers import http_server

S = TaskState
DEV = Actor(kind="human", name="dev")
CAROL = Actor(kind="human", name="carol")
AGENT = Actor(kind="agent", name="coder")
CI = Actor(kind="system", name="ci")
POLICY = Actor(kind="system", name="plan-policy")
XSS_TITLE = "Fix <script>alert(1)</script> in the greeting"

Step = tuple[Actor, str, TaskState | None]

# Legal walks through the state machine, as the gate and CI record them.
PLAN: list[Step] = [(AGENT, "planning_started", S.PLANNING), (AGENT, "plan_proposed", S.PLAN_REVIEW)]
HUMAN_PLAN_OK: list[Step] = [(CAROL, "plan_approved", S.CODING)]
POLICY_PLAN_OK: list[Step] = [(POLICY, "plan_approved", S.CODING)]
SEND_PLAN_BACK: list[Step] = [(CAROL, "plan_rejected", S.PLANNING), (AGENT, "plan_proposed", S.PLAN_REVIEW)]
CODE_AND_TEST: list[Step] = [(AGENT, "edit_applied", None), (AGENT, "tests_run", S.TESTING)]
OPEN_PR: list[Step] = [(AGENT, "pr_opened", S.PR_OPEN), (CI, "ci_started", S.CI)]
GREEN: list[Step] = [(CI, "ci_passed", S.REVIEW)]
RED_THEN_FIX: list[Step] = [
    (CI, "ci_failed", S.NEEDS_CHANGES),
    (AGENT, "coding_resumed", S.CODING),
    *CODE_AND_TEST,
    *OPEN_PR,
]
MERGE: list[Step] = [(CAROL, "pr_approved", S.APPROVED), (CAROL, "pr_merged", S.MERGED)]


def start(deps: ServerDeps, request: str) -> Task:
    return deps.tasks.start(request, DEV)


def head(n: int) -> str:
    return f"{n:040x}"


def walk(deps: ServerDeps, task: Task, *steps: Step) -> Task:
    """Record `steps` in order; each `pr_opened` pushes a new head, and CI reports on the newest."""
    pushes = 0
    for actor, action, to_state in steps:
        payload: dict[str, Any] = {}
        if action == "pr_opened":
            pushes += 1
            payload = {"head_sha": head(pushes)}
        elif action.startswith("ci_"):
            payload = {"commit": head(pushes)}
        task = deps.tasks.record(task.id, actor, action, payload, to_state)
    return task


def agent_step(deps: ServerDeps, task: Task, tokens_in: int, tokens_out: int, cost: float) -> Task:
    payload = {"agent": "coder", "round": 1, "step": 1, "model": "m", "wall_s": 0.1, "calls": [],
               "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}, "cost_usd": cost}  # fmt: skip
    return deps.tasks.record(task.id, AGENT, "agent_step", payload)


def build_histories(deps: ServerDeps) -> dict[str, Task]:
    """Six tasks, oldest first, whose numbers the tests below work out by hand.

    plan decisions by people: clean +1, healed -1 +1, plan_refused -1, in_review +1, xss +1 -> 4 of 6
    PRs that ended: clean merged, healed merged, policy rejected, xss merged -> 3 of 4
    red CI: healed (then green), policy (never green) -> 1 of 2
    """
    made: dict[str, Task] = {}
    clean = start(deps, "Add a --verbose flag")
    agent_step(deps, clean, 100, 20, 0.01)
    agent_step(deps, clean, 300, 5, 0.02)
    made["clean"] = walk(deps, clean, *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *GREEN, *MERGE)

    healed = start(deps, "Add a --quiet flag")
    agent_step(deps, healed, 1_000, 200, 0.5)
    made["healed"] = walk(
        deps, healed, *PLAN, *SEND_PLAN_BACK, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *RED_THEN_FIX, *GREEN, *MERGE
    )

    policy = start(deps, "Rename the config module")
    made["policy"] = walk(
        deps,
        policy,
        *PLAN,
        *POLICY_PLAN_OK,
        *CODE_AND_TEST,
        *OPEN_PR,
        (CI, "ci_failed", S.NEEDS_CHANGES),
        (CAROL, "pr_rejected", S.REJECTED),
    )

    refused = start(deps, "Rewrite it in another language")
    made["plan_refused"] = walk(deps, refused, *PLAN, (CAROL, "plan_rejected", S.REJECTED))

    in_review = start(deps, "Add a --color flag")
    made["in_review"] = walk(deps, in_review, *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *GREEN)

    xss = start(deps, XSS_TITLE)
    agent_step(deps, xss, 50, 50, 0.001)
    made["xss"] = walk(deps, xss, *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *GREEN, *MERGE)
    return made


def by_id(metrics: Metrics) -> dict[str, TaskMetrics]:
    return {t.id: t for t in metrics.tasks}


@dataclass
class Mix:
    """The six histories of `build_histories` in a repository of their own, and what `collect` made of them."""

    repo: Path
    made: dict[str, Task]
    tasks: dict[str, Task]  # as stored at the end
    events: dict[str, list[Event]]
    metrics: Metrics

    def found(self, name: str) -> TaskMetrics:
        return by_id(self.metrics)[self.made[name].id]


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mix]:
    with clean_env():
        repo = init_repo(tmp_path_factory.mktemp("metrics") / "repo")
        deps = open_deps(load_settings(repo=repo))
        try:
            made = build_histories(deps)
            found = Mix(
                repo,
                made,
                {name: deps.tasks.get(t.id) for name, t in made.items()},
                {name: deps.tasks.store.events(t.id) for name, t in made.items()},
                collect(deps.tasks),
            )
        finally:
            deps.ci.close()
            deps.tasks.store.close()
    yield found  # the store is closed: the site's server process is its only user from here on


# -- collect() and task_metrics()


def test_the_walks_are_legal_moves_only(deps: ServerDeps) -> None:
    task = start(deps, "x")
    with pytest.raises(InvalidTransition):
        walk(deps, task, (CAROL, "pr_merged", S.MERGED))
    assert walk(deps, task, *PLAN).state == S.PLAN_REVIEW


def test_rates_over_a_mix_of_histories(mix: Mix) -> None:
    metrics = mix.metrics
    assert metrics.plan_acceptance == Rate(hits=4, total=6)
    assert metrics.pr_acceptance == Rate(hits=3, total=4)
    assert metrics.ci_self_heal == Rate(hits=1, total=2)
    assert metrics.plan_acceptance.percent == pytest.approx(200 / 3)
    assert (metrics.pr_acceptance.percent, metrics.ci_self_heal.percent) == (75.0, 50.0)
    assert [t.id for t in metrics.tasks] == [t.id for t in mix.made.values()], "oldest first"
    assert [t.state for t in metrics.tasks] == [t.state for t in mix.tasks.values()]


def test_plan_acceptance_counts_only_human_decisions(mix: Mix) -> None:
    assert [e.actor for e in mix.events["policy"] if e.action == "plan_approved"] == ["system:plan-policy"]
    policy = mix.found("policy")
    assert (policy.plan_approved, policy.plan_rejected) == (0, 0), "a plan-policy approval is not a decision"
    assert (mix.found("healed").plan_approved, mix.found("healed").plan_rejected) == (1, 1)
    assert (mix.found("plan_refused").plan_approved, mix.found("plan_refused").plan_rejected) == (0, 1)


def test_only_a_policy_approval_gives_no_plan_rate(deps: ServerDeps) -> None:
    task = walk(deps, start(deps, "x"), *PLAN, *POLICY_PLAN_OK)
    assert any(e.action == "plan_approved" for e in deps.tasks.store.events(task.id))
    metrics = collect(deps.tasks)
    assert metrics.plan_acceptance == Rate(hits=0, total=0) and metrics.plan_acceptance.percent is None


def test_pr_acceptance_counts_only_prs_that_ended_merged_or_rejected(mix: Mix) -> None:
    refused = mix.found("plan_refused")
    assert (refused.state, refused.pr_opened) == (S.REJECTED, False), "rejected at plan review: no PR to count"
    assert mix.found("in_review").pr_opened is True, "open, still in review: not finished"
    assert (mix.found("policy").pr_opened, mix.found("policy").state) == (True, S.REJECTED)
    ended = [t for t in mix.metrics.tasks if t.pr_opened and t.state in (S.MERGED, S.REJECTED)]
    assert {t.id for t in ended} == {mix.made[n].id for n in ("clean", "healed", "policy", "xss")}


def test_a_pr_whose_task_was_aborted_is_not_counted(deps: ServerDeps) -> None:
    task = walk(deps, start(deps, "x"), *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *GREEN)
    deps.tasks.abort(task.id, "not needed any more", DEV)
    assert collect(deps.tasks).pr_acceptance == Rate(hits=0, total=0)


def test_ci_self_heal_red_then_green_heals_red_only_does_not_green_only_is_left_out(mix: Mix) -> None:
    assert (mix.found("healed").ci_failed, mix.found("healed").ci_healed) == (1, True)
    assert (mix.found("policy").ci_failed, mix.found("policy").ci_healed) == (1, False)
    for name in ("clean", "in_review", "xss"):
        assert (mix.found(name).ci_failed, mix.found(name).ci_healed) == (0, False), name


def test_green_before_red_is_not_a_heal_and_two_reds_count_once_in_the_rate(deps: ServerDeps) -> None:
    # green, then a reviewer asks for changes, then red and never green again
    first = walk(deps, start(deps, "x"), *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *GREEN,
                 (CAROL, "changes_requested", S.NEEDS_CHANGES), (AGENT, "coding_resumed", S.CODING),
                 *CODE_AND_TEST, *OPEN_PR, (CI, "ci_failed", S.NEEDS_CHANGES))  # fmt: skip
    # red twice, then green
    second = walk(deps, start(deps, "y"), *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *RED_THEN_FIX,
                  *RED_THEN_FIX, *GREEN)  # fmt: skip
    found = by_id(metrics := collect(deps.tasks))
    assert (found[first.id].ci_failed, found[first.id].ci_healed) == (1, False)
    assert (found[second.id].ci_failed, found[second.id].ci_healed) == (2, True)
    assert metrics.ci_self_heal == Rate(hits=1, total=2)


def test_a_green_rerun_of_the_same_red_head_is_not_a_self_heal(deps: ServerDeps) -> None:
    task = walk(deps, start(deps, "x"), *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR)
    red = head(1)
    record_verdict(deps.tasks.store, task.id, False, {"commit": red, "status": "failure"}, [])
    record_verdict(deps.tasks.store, task.id, True, {"commit": red, "status": "success"}, [])  # checks re-run
    task = deps.tasks.get(task.id)
    events = deps.tasks.store.events(task.id)
    assert task.state == S.NEEDS_CHANGES, "the task still waits for a fix"
    assert [(e.action, e.payload["commit"]) for e in events[-2:]] == [("ci_failed", red), ("ci_passed", red)]
    assert task_metrics(task, events).ci_healed is False


def test_lead_time_is_merge_time_minus_creation_and_tokens_and_cost_are_summed(mix: Mix) -> None:
    for name in ("clean", "healed", "xss"):
        merged = next(e for e in mix.events[name] if e.action == "pr_merged")
        lead = (merged.at - mix.tasks[name].created_at).total_seconds()
        assert mix.found(name).lead_time_s == lead > 0, name
    for name in ("policy", "plan_refused", "in_review"):
        assert mix.found(name).lead_time_s is None, name
    clean = mix.found("clean")
    assert (clean.tokens, clean.agent_steps) == (425, 2) and clean.cost_usd == pytest.approx(0.03)
    assert mix.found("healed").tokens == 1_200 and mix.found("healed").cost_usd == pytest.approx(0.5)
    assert (mix.found("policy").tokens, mix.found("policy").agent_steps, mix.found("policy").cost_usd) == (0, 0, 0)


def test_task_metrics_reads_one_task_and_its_events(deps: ServerDeps) -> None:
    task = start(deps, "Add a --verbose flag\n\nwith details")
    agent_step(deps, task, 7, 3, 0.25)
    task = walk(deps, task, *PLAN, *HUMAN_PLAN_OK, *CODE_AND_TEST, *OPEN_PR, *GREEN, *MERGE)
    found = task_metrics(task, deps.tasks.store.events(task.id))
    assert (found.id, found.title, found.state, found.created_at) == (
        task.id,
        "Add a --verbose flag",
        S.MERGED,
        task.created_at,
    )
    assert (found.plan_approved, found.pr_opened, found.tokens, found.agent_steps) == (1, True, 10, 1)
    assert found.cost_usd == pytest.approx(0.25)


def test_the_limit_keeps_the_newest_tasks_oldest_first(deps: ServerDeps) -> None:
    made = [start(deps, f"task {n}") for n in range(5)]
    newest = collect(deps.tasks, limit=3)
    assert [t.id for t in newest.tasks] == [t.id for t in made[2:]]
    assert [t.id for t in collect(deps.tasks).tasks] == [t.id for t in made]


def test_an_empty_store_has_no_rates(deps: ServerDeps) -> None:
    metrics = collect(deps.tasks)
    assert metrics.tasks == []
    for rate in (metrics.plan_acceptance, metrics.pr_acceptance, metrics.ci_self_heal):
        assert rate == Rate(hits=0, total=0) and rate.percent is None


# -- the page, over real HTTP


@dataclass
class Served:
    url: str
    token: str
    tasks: dict[str, Task]

    def client(self, bearer: bool = True) -> httpx2.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if bearer else None
        return httpx2.Client(base_url=self.url, follow_redirects=False, timeout=60, headers=headers)


@contextmanager
def serve(repo: Path, tasks: dict[str, Task]) -> Iterator[Served]:
    with clean_env():
        token = ReviewerStore(repo / ".shipway").add("carol")
        with http_server(repo, env=SERVER_ENV) as server:
            yield Served(server.base_url, token, tasks)


@pytest.fixture(scope="module")
def site(mix: Mix) -> Iterator[Served]:
    with serve(mix.repo, mix.made) as served:
        yield served


@pytest.fixture(scope="module")
def empty_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(init_repo(tmp_path_factory.mktemp("metrics-empty") / "repo"), {}) as served:
        yield served


def sections(html: str) -> dict[str, str]:
    """Each `<section>` of the page by its heading."""
    found = {}
    for body in re.findall(r"<section>(.*?)</section>", html, re.DOTALL):
        heading = re.search(r"<h[12]>(.*?)</h[12]>", body)
        assert heading is not None
        found[unescape(heading.group(1))] = body
    return found


def cards(html: str) -> dict[str, tuple[str, str]]:
    """The metric cards: name -> (big number, the line under it)."""
    pattern = r'<div class="metric"><div class="big">([^<]*)</div><div>([^<]*)</div><div class="muted">([^<]*)</div>'
    return {unescape(name): (unescape(big), unescape(note)) for big, name, note in re.findall(pattern, html)}


def test_anonymous_visitors_are_sent_to_the_login_form(site: Served) -> None:
    with site.client(bearer=False) as anon:
        response = anon.get("/review/metrics")
    assert response.status_code == 303
    assert response.headers["location"] == "/review/login?next=/review/metrics"
    with site.client(bearer=False) as anon:
        wrong = anon.get("/review/metrics", headers={"Authorization": "Bearer swr_not-a-reviewer-token"})
    assert wrong.status_code == 303


def test_the_page_shows_the_three_rates_as_percentages(site: Served) -> None:
    with site.client() as carol:
        response = carol.get("/review/metrics")
    assert response.status_code == 200, response.text
    shown = cards(response.text)
    assert shown["plan acceptance"] == ("67%", "4 of 6 human plan decisions approved")
    assert shown["PR acceptance"] == ("75%", "3 of 4 finished PRs merged")
    assert shown["CI self-heal"] == ("50%", "1 of 2 tasks with red CI went green")
    assert shown["tasks"] == ("6", "1,725 tokens · $0.53")
    assert "carol" in response.text


def test_the_lead_time_chart_has_one_bar_per_merged_task(site: Served) -> None:
    with site.client() as carol:
        html = carol.get("/review/metrics").text
    charts = sections(html)
    lead = charts["Lead time per merged task (request to merge)"]
    assert lead.count("<rect") == 3
    merged = [site.tasks[name].id for name in ("clean", "healed", "xss")]
    assert [re.match(r"(\w+) ·", tip).group(1) for tip in re.findall(r"<title>([^<]*)</title>", lead)] == merged  # type: ignore[union-attr]
    assert charts["Agent tokens per task"].count("<rect") == 3, "the three tasks with agent steps"
    assert charts["Agent cost per task"].count("<rect") == 3


def test_the_page_has_no_script_and_the_csp_still_forbids_them(site: Served) -> None:
    with site.client() as carol:
        response = carol.get("/review/metrics")
    policy = {
        d.split()[0]: d.partition(" ")[2]
        for d in (p.strip() for p in response.headers["content-security-policy"].split(";"))
        if d
    }
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text.lower()


def test_an_untrusted_title_is_escaped_in_the_chart(site: Served) -> None:
    with site.client() as carol:
        html = carol.get("/review/metrics").text
    assert "alert(1)" in html, "the task is on the page"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    tips = [unescape(t) for t in re.findall(r"<title>([^<]*)</title>", html)]
    assert any(t.endswith(XSS_TITLE) and t.startswith(site.tasks["xss"].id) for t in tips)


def test_the_task_list_header_links_to_the_metrics_page(site: Served) -> None:
    with site.client() as carol:
        listing = carol.get("/review")
    assert listing.status_code == 200
    header = re.search(r"<header>(.*?)</header>", listing.text, re.DOTALL)
    assert header is not None and '<a href="/review/metrics">Metrics</a>' in header.group(1)
    assert "<script" not in listing.text.lower()


def test_an_empty_store_renders_no_data_yet(empty_site: Served) -> None:
    with empty_site.client() as carol:
        response = carol.get("/review/metrics")
    assert response.status_code == 200, response.text
    charts = sections(response.text)
    for title in ("Lead time per merged task (request to merge)", "Agent tokens per task", "Agent cost per task"):
        assert "No data yet." in charts[title] and "<svg" not in charts[title]
    shown = cards(response.text)
    assert shown["plan acceptance"] == ("n/a", "0 of 0 human plan decisions approved")
    assert shown["tasks"] == ("0", "0 tokens · $0.00")
