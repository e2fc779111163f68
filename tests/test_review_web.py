"""The review site over real HTTP: login, sessions, CSRF, decisions, merging, escaping, limits.

One repository is prepared for the module with the real sandbox and CI: a task per test that
changes state, plus a shared task in review that only ever sees refused requests. Then a real
`shipway serve --http` subprocess serves it. What the server did is read back from the task
store it wrote; every refused request must leave the task's state and every git ref as they
were, and (when a task is named) be in the task's event log.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from mcp_server.reviewers import ReviewerStore
from mcp_server.tasks.model import Actor, Event, Task, TaskState
from tests.helpers.gitrepo import git
from tests.helpers.review_site import (
    ADD_DOUBLE_XSS,
    SERVER_ENV,
    XSS_LINE,
    XSS_REQUEST,
    clean_env,
    hidden,
    read_events,
    read_task,
    refs,
    task_in_review,
)
from tests.helpers.samples import commit_file
from tests.helpers.servers import SHIPWAY, http_server
from tests.test_ci_gate import green_sample
from tests.test_review_gate import ADD_DOUBLE, PLAN, TEST_DOUBLE, open_green, proposed
from tests.test_sandbox_tool import needs_bwrap

pytestmark = needs_bwrap

PAGE = "system:review-page"
MADE_UP_HEAD = "deadbeef" * 5


@dataclass
class Site:
    repo: Path
    url: str
    mcp_url: str
    token: str  # carol's reviewer token
    tasks: dict[str, Task]

    def client(self, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> httpx2.Client:
        return httpx2.Client(base_url=self.url, follow_redirects=False, timeout=60, headers=headers, cookies=cookies)

    def task(self, name: str) -> Task:
        return read_task(self.repo, self.tasks[name].id)

    def events(self, name: str) -> list[Event]:
        return read_events(self.repo, self.tasks[name].id)

    def head(self, name: str) -> str:
        return git(self.repo, "rev-parse", f"shipway/{self.tasks[name].id}")

    def path(self, name: str, tail: str = "") -> str:
        return f"/review/tasks/{self.tasks[name].id}{tail}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with clean_env():
        repo = green_sample(tmp_path_factory.mktemp("review-web") / "repo")
        commit_file(repo, "index.html", "<h1>Approved preview</h1>\n", "a page to preview")
        deps = open_green(repo, preview_approval="all")  # an agent's local preview waits for a person too
        try:
            tasks = {
                # Refused requests only: many tests share it and look at what each adds to its log.
                "shared": task_in_review(deps, XSS_REQUEST, ADD_DOUBLE_XSS),
                "approve": task_in_review(deps, "Add double(), approved on the page", ADD_DOUBLE),
                "stale": task_in_review(deps, "Add double(), pushed to while reviewed", ADD_DOUBLE),
                "merge": task_in_review(deps, "Add double(), merged from the page", ADD_DOUBLE),
                "plan_approve": proposed(deps, PLAN, "Plan approved on the page"),
                "plan_reject": proposed(deps, PLAN, "Plan sent back on the page"),
                "bearer": proposed(deps, PLAN, "Plan approved with a bearer token"),
                "origin_null": proposed(deps, PLAN, "Plan approved by a browser's own form"),
                "preview": proposed(deps, PLAN, "Preview approved on the page"),
            }
            waiting = deps.previews.deploy(tasks["preview"].id, "local", Actor(kind="agent", name="mcp-client"))
            assert waiting.state == "awaiting_approval", waiting
        finally:
            deps.ci.close()
            deps.tasks.store.close()
        token = ReviewerStore(repo / ".shipway").add("carol")
        with http_server(repo, env=SERVER_ENV) as server:
            yield Site(repo, server.base_url, server.mcp_url, token, tasks)


@pytest.fixture
def carol(site: Site) -> Iterator[httpx2.Client]:
    """A client holding carol's session cookie."""
    with site.client() as client:
        login(client, site.token)
        yield client


def login(client: httpx2.Client, token: str) -> None:
    response = client.post("/review/login", data={"token": token, "next": "/review"})
    assert response.status_code == 303, response.text
    assert client.cookies.get("shipway_review")


def page(client: httpx2.Client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (response.status_code, response.headers.get("location"))
    return response.text


@dataclass
class Before:
    task: Task
    events: int
    refs: str


def before(site: Site, name: str) -> Before:
    return Before(site.task(name), len(site.events(name)), refs(site.repo))


def added(site: Site, name: str, since: Before) -> list[Event]:
    """The events recorded since `since`, after checking nothing else changed: state and refs."""
    task = site.task(name)
    assert task.state == since.task.state, "a refused request must not move the task"
    assert refs(site.repo) == since.refs, "a refused request must not touch any branch"
    return site.events(name)[since.events :]


def page_refusal(site: Site, name: str, since: Before, attempt: str) -> Event:
    """Exactly one `gate_refused` by the review page itself, about `attempt`."""
    new = added(site, name, since)
    assert [(e.action, e.actor) for e in new] == [("gate_refused", PAGE)], new
    event = new[0]
    assert (event.from_state, event.to_state) == (since.task.state, since.task.state)
    assert event.payload["attempt"] == attempt and event.payload["via"] == "review page"
    return event


def gate_refusal(site: Site, name: str, since: Before, attempt: str) -> Event:
    """Exactly one `gate_refused` by the gate, on behalf of the reviewer who tried."""
    new = added(site, name, since)
    assert [(e.action, e.actor) for e in new] == [("gate_refused", "human:carol")], new
    assert new[0].payload["attempt"] == attempt
    return new[0]


def alert(html: str) -> str:
    """The error the page shows (`role="alert"`), as text."""
    match = re.search(r'<section class="error" role="alert">(.*?)</section>', html, re.DOTALL)
    assert match is not None, "the page shows no error"
    return unescape(match.group(1))


def task_state(html: str) -> str:
    match = re.search(r'<span class="state" id="task-state">([^<]*)</span>', html)
    assert match is not None
    return match.group(1)


def csp(response: httpx2.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (part.strip() for part in policy.split(";")) if d}


# -- anonymous visitors


def test_anonymous_pages_redirect_to_the_login_form_and_it_keeps_where_to_go(site: Site) -> None:
    since = before(site, "shared")
    with site.client() as anon:
        listing = anon.get("/review")
        task_page = anon.get(site.path("shared"))
        form = anon.get(task_page.headers["location"])
    assert listing.status_code == 303 and listing.headers["location"] == "/review/login?next=/review"
    assert task_page.status_code == 303
    assert task_page.headers["location"] == f"/review/login?next={site.path('shared')}"
    assert form.status_code == 200 and "Reviewer login" in form.text
    assert hidden(form.text, "next") == site.path("shared")
    assert not listing.cookies and not task_page.cookies
    assert added(site, "shared", since) == [], "looking is not recorded"


@pytest.mark.parametrize(
    ("tail", "fields", "attempt", "authorization"),
    [
        ("/decide", {"action": "approve_pr", "comment": "lgtm"}, "approve_pr", None),
        ("/decide", {"action": "reject_pr", "comment": "no"}, "reject_pr", None),
        ("/merge", {}, "merge_pr", None),
        ("/decide", {"action": "approve_pr"}, "approve_pr", "Bearer swr_not-a-reviewer-token"),
        ("/merge", {}, "merge_pr", "Basic Y2Fyb2w6cGFzc3dvcmQ="),
    ],
    ids=["approve", "reject", "merge", "wrong-bearer-approve", "basic-auth-merge"],
)
def test_anonymous_actions_are_401_recorded_and_change_nothing(
    site: Site, tail: str, fields: dict[str, str], attempt: str, authorization: str | None
) -> None:
    since = before(site, "shared")
    headers = {"Authorization": authorization} if authorization else {}
    with site.client(headers=headers) as anon:
        response = anon.post(site.path("shared", tail), data={**fields, "head_sha": site.head("shared")})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["error"] == "unauthorized"
    event = page_refusal(site, "shared", since, attempt)
    assert "401" in event.payload["reason"]


# -- logging in


@pytest.mark.parametrize("token", ["", "swr_wrong", "x" * 500], ids=["empty", "wrong", "too-long"])
def test_a_wrong_token_cannot_log_in_and_gets_no_cookie(site: Site, token: str) -> None:
    with site.client() as client:
        response = client.post("/review/login", data={"token": token, "next": "/review"})
        after = client.get("/review")
    assert response.status_code == 401
    assert "set-cookie" not in response.headers and not client.cookies
    assert "That token is not a reviewer&#x27;s token." in response.text
    assert after.status_code == 303 and after.headers["location"].startswith("/review/login")


def test_the_right_token_logs_in_with_a_strict_httponly_cookie_and_goes_where_asked(site: Site) -> None:
    target = site.path("shared")
    with site.client() as client:
        response = client.post("/review/login", data={"token": f"  {site.token}\n", "next": target})
        assert response.status_code == 303 and response.headers["location"] == target
        cookie = response.headers["set-cookie"]
        name, _, rest = cookie.partition("=")
        value, *flags = (part.strip() for part in rest.split(";"))
        shown = page(client, target)
    attributes = {f.partition("=")[0].lower(): f.partition("=")[2] for f in flags}
    assert name == "shipway_review" and value
    assert site.token not in cookie, "the cookie must not carry the token itself"
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/review"
    assert int(attributes["max-age"]) <= 24 * 3600
    assert "<span>carol</span>" in shown and task_state(shown) == "review"


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/", "https://evil.example", "/review//evil.example", "/review/\\evil.example", "/\\evil.example",
     "http://127.0.0.1:1/review", "javascript:alert(1)", "", "evil"],
)  # fmt: skip
def test_login_never_redirects_off_the_review_site(site: Site, next_path: str) -> None:
    with site.client() as client:
        form = client.get("/review/login", params={"next": next_path})
        response = client.post("/review/login", data={"token": site.token, "next": next_path})
    assert form.status_code == 200 and hidden(form.text, "next") == "/review"
    assert response.status_code == 303 and response.headers["location"] == "/review"


def test_a_tampered_session_cookie_is_no_session(site: Site, carol: httpx2.Client) -> None:
    value = carol.cookies["shipway_review"]
    with site.client(cookies={"shipway_review": value}) as client:
        assert client.get("/review").status_code == 200, "the genuine cookie, sent the same way, is a session"
    forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    with site.client(cookies={"shipway_review": forged}) as client:
        assert client.get("/review").status_code == 303
        since = before(site, "shared")
        response = client.post(site.path("shared", "/decide"), data={"action": "approve_pr"})
    assert response.status_code == 401
    page_refusal(site, "shared", since, "approve_pr")


# -- forged requests from a browser that holds a session


FORGERIES = {
    "no-csrf": ({}, "drop", "CSRF token is missing or wrong"),
    "empty-csrf": ({}, "empty", "CSRF token is missing or wrong"),
    "csrf-of-another-session": ({}, "other", "CSRF token is missing or wrong"),
    "evil-origin": ({"Origin": "http://evil.example"}, "own", "the request came from another origin"),
    "evil-origin-same-port": ({"Origin": "http://evil.example:{port}"}, "own", "came from another origin"),
    "null-origin": ({"Origin": "null"}, "own", "the request came from an opaque origin"),
    "cross-site": ({"Sec-Fetch-Site": "cross-site"}, "own", "another site (Sec-Fetch-Site: cross-site)"),
    "same-site": ({"Sec-Fetch-Site": "same-site"}, "own", "another site (Sec-Fetch-Site: same-site)"),
}


@pytest.mark.parametrize("tail", ["/decide", "/merge"])
@pytest.mark.parametrize("case", list(FORGERIES))
def test_forged_posts_with_a_session_are_403_recorded_and_change_nothing(
    site: Site, carol: httpx2.Client, case: str, tail: str
) -> None:
    headers, csrf_kind, reason = FORGERIES[case]
    port = site.url.rsplit(":", 1)[1]
    headers = {k: v.replace("{port}", port) for k, v in headers.items()}
    shown = page(carol, site.path("shared"))
    fields = {"action": "approve_pr", "comment": "forged", "head_sha": hidden(shown, "head_sha")}
    if csrf_kind == "own":
        fields["csrf"] = hidden(shown, "csrf")
    elif csrf_kind == "empty":
        fields["csrf"] = ""
    elif csrf_kind == "other":
        with site.client() as other:
            login(other, site.token)  # the same reviewer, another session: another token
            fields["csrf"] = hidden(page(other, site.path("shared")), "csrf")
        assert fields["csrf"] != hidden(shown, "csrf")
    since = before(site, "shared")
    response = carol.post(site.path("shared", tail), data=fields, headers=headers)
    assert response.status_code == 403
    assert "Refused:" in response.text and reason in unescape(response.text)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    event = page_refusal(site, "shared", since, "merge_pr" if tail == "/merge" else "approve_pr")
    assert reason in event.payload["reason"] and event.payload["session_of"] == "carol"


def test_a_non_ascii_csrf_token_is_refused_as_forged_and_recorded(site: Site, carol: httpx2.Client) -> None:
    since = before(site, "shared")
    response = carol.post(site.path("shared", "/decide"), data={"action": "approve_pr", "csrf": "é"})
    assert response.status_code == 403
    page_refusal(site, "shared", since, "approve_pr")


def test_the_pages_own_form_post_as_a_browser_sends_it_is_accepted(site: Site, carol: httpx2.Client) -> None:
    response = carol.get(site.path("origin_null"))
    fields = {"action": "approve_plan", "csrf": hidden(response.text, "csrf"),
              "plan_sha256": hidden(response.text, "plan_sha256")}  # fmt: skip
    # What a browser sends when the page's Approve button is clicked: the Origin of a POST is
    # "null" under the page's referrer policy when that is no-referrer (Fetch, "append a request
    # `Origin` header"), else the page's origin. Chromium does this; the browser test shows it.
    policy = response.headers.get("referrer-policy", "strict-origin-when-cross-origin")
    origin = "null" if policy == "no-referrer" else site.url
    browser = {"Origin": origin, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
    posted = carol.post(site.path("origin_null", "/decide"), data=fields, headers=browser)
    assert posted.status_code == 303, unescape(posted.text)[-300:]
    assert site.task("origin_null").state == TaskState.CODING


# -- decisions


def test_approving_with_the_pages_csrf_and_head_moves_the_task_to_approved(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("approve"))
    head = site.head("approve")
    assert hidden(shown, "head_sha") == head
    assert 'name="action" value="approve_pr"' in shown and "/merge" not in shown
    refs_before = refs(site.repo)
    comment = "lgtm <script>alert('comment')</script>"
    response = carol.post(
        site.path("approve", "/decide"),
        data={"action": "approve_pr", "comment": comment, "csrf": hidden(shown, "csrf"), "head_sha": head},
        headers={"Origin": site.url, "Sec-Fetch-Site": "same-origin"},  # a same-origin request, said so
    )
    assert response.status_code == 303
    assert response.headers["location"] == site.path("approve", "?done=approve_pr")

    assert site.task("approve").state == TaskState.APPROVED
    event = site.events("approve")[-1]
    assert (event.action, event.actor, event.from_state, event.to_state) == (
        "pr_approved", "human:carol", TaskState.REVIEW, TaskState.APPROVED,
    )  # fmt: skip
    assert event.payload["head_sha"] == head and event.payload["comment"] == comment
    assert refs(site.repo) == refs_before, "an approval moves no branch"

    after = page(carol, response.headers["location"])
    assert "Done: approve pr." in after and task_state(after) == "approved"
    assert "lgtm &lt;script&gt;" in after and "<script>" not in after
    assert f'action="{site.path("approve", "/merge")}"' in after, "approved and green: the Merge button is shown"


def test_approving_a_head_the_reviewer_did_not_see_is_409_shown_and_recorded(site: Site, carol: httpx2.Client) -> None:
    seen = page(carol, site.path("stale"))
    csrf, head = hidden(seen, "csrf"), hidden(seen, "head_sha")

    # A head that never existed.
    since = before(site, "stale")
    made_up = carol.post(site.path("stale", "/decide"),
                         data={"action": "approve_pr", "csrf": csrf, "head_sha": MADE_UP_HEAD})  # fmt: skip
    assert made_up.status_code == 409
    reason = f"you reviewed {MADE_UP_HEAD[:12]} but the head is now {head[:12]}; review the new commits"
    assert alert(made_up.text) == f"approve_pr refused: {reason}"
    assert gate_refusal(site, "stale", since, "approve_pr").payload["reason"] == reason
    assert task_state(made_up.text) == "review"

    # The agent pushes while the reviewer reads the page they already loaded.
    async def push() -> None:
        async with Client(site.mcp_url) as agent:
            result = await agent.call_tool(
                "apply_edit", {"task_id": site.tasks["stale"].id, "blocks": [TEST_DOUBLE.model_dump()]}
            )
            assert not result.is_error, result.content

    anyio.run(push)
    new_head = site.head("stale")
    assert new_head != head and site.task("stale").state == TaskState.CODING
    since = before(site, "stale")
    late = carol.post(site.path("stale", "/decide"), data={"action": "approve_pr", "csrf": csrf, "head_sha": head})
    assert late.status_code == 409
    reason = f"you reviewed {head[:12]} but the head is now {new_head[:12]}; review the new commits"
    assert alert(late.text) == f"approve_pr refused: {reason}"
    assert gate_refusal(site, "stale", since, "approve_pr").payload["reason"] == reason
    assert all(e.action != "pr_approved" for e in site.events("stale"))


def test_a_plan_is_approved_on_the_page_bound_to_its_sha256(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("plan_approve"))
    assert task_state(shown) == "plan_review" and PLAN.goal in shown
    assert hidden(shown, "plan_sha256") == PLAN.sha256()
    csrf = hidden(shown, "csrf")

    since = before(site, "plan_approve")
    other = carol.post(site.path("plan_approve", "/decide"),
                       data={"action": "approve_plan", "csrf": csrf, "plan_sha256": "0" * 64})  # fmt: skip
    assert other.status_code == 409
    assert alert(other.text) == "approve_plan refused: the plan changed since you read it; read it again"
    gate_refusal(site, "plan_approve", since, "approve_plan")

    response = carol.post(site.path("plan_approve", "/decide"),
                          data={"action": "approve_plan", "csrf": csrf, "plan_sha256": PLAN.sha256(),
                                "comment": "go"})  # fmt: skip
    assert response.status_code == 303
    assert response.headers["location"] == site.path("plan_approve", "?done=approve_plan")
    assert site.task("plan_approve").state == TaskState.CODING
    event = site.events("plan_approve")[-1]
    assert (event.action, event.actor, event.to_state) == ("plan_approved", "human:carol", TaskState.CODING)
    assert (event.payload["plan_sha256"], event.payload["comment"]) == (PLAN.sha256(), "go")


def test_sending_a_plan_back_needs_a_comment(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("plan_reject"))
    csrf = hidden(shown, "csrf")
    since = before(site, "plan_reject")
    for comment in ("", "   \n  "):
        response = carol.post(site.path("plan_reject", "/decide"),
                              data={"action": "reject_plan", "csrf": csrf, "comment": comment})  # fmt: skip
        assert response.status_code == 409
        assert alert(response.text) == "a comment is required: say what should change, or why"
    assert added(site, "plan_reject", since) == [], "an incomplete decision is not one"
    assert site.task("plan_reject").version == since.task.version

    response = carol.post(site.path("plan_reject", "/decide"),
                          data={"action": "reject_plan", "csrf": csrf, "comment": "write the test first"})  # fmt: skip
    assert response.status_code == 303
    assert site.task("plan_reject").state == TaskState.PLANNING
    event = site.events("plan_reject")[-1]
    assert (event.action, event.actor, event.payload["comment"]) == (
        "plan_rejected", "human:carol", "write the test first",
    )  # fmt: skip


def test_an_unknown_action_is_409_and_changes_nothing(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("shared"))
    since = before(site, "shared")
    response = carol.post(site.path("shared", "/decide"), data={"action": "approve", "csrf": hidden(shown, "csrf")})
    assert response.status_code == 409
    assert alert(response.text).startswith("unknown action 'approve'; one of approve_plan, reject_plan")
    assert added(site, "shared", since) == []


def test_the_decide_endpoint_takes_only_decisions(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("shared"))
    since = before(site, "shared")
    response = carol.post(site.path("shared", "/decide"), data={"action": "merge_pr", "csrf": hidden(shown, "csrf")})
    assert response.status_code == 409
    assert alert(response.text).startswith("unknown action 'merge_pr'")
    assert added(site, "shared", since) == []


def test_a_bearer_reviewer_token_decides_without_a_session_or_csrf(site: Site) -> None:
    with site.client(headers={"Authorization": f"Bearer {site.token}"}) as api:
        listing = api.get("/review")
        response = api.post(site.path("bearer", "/decide"),
                            data={"action": "approve_plan", "comment": "via the API"})  # fmt: skip
    assert listing.status_code == 200 and site.tasks["bearer"].id in listing.text
    assert response.status_code == 303
    assert site.task("bearer").state == TaskState.CODING
    event = site.events("bearer")[-1]
    assert (event.action, event.actor, event.payload["comment"]) == ("plan_approved", "human:carol", "via the API")


def test_a_removed_reviewers_session_and_token_stop_working(site: Site) -> None:
    reviewers = ReviewerStore(site.repo / ".shipway")
    dave = reviewers.add("dave")
    with site.client() as client:
        login(client, dave)
        csrf = hidden(page(client, site.path("shared")), "csrf")
        assert "<span>dave</span>" in page(client, "/review")

        reviewers.remove("dave")
        listing = client.get("/review")
        task_page = client.get(site.path("shared"))
        since = before(site, "shared")
        action = client.post(site.path("shared", "/decide"), data={"action": "approve_pr", "csrf": csrf})
        assert action.status_code == 401
        page_refusal(site, "shared", since, "approve_pr")

        reviewers.add("dave")  # re-keyed: the old session still names the old token
        again = client.get("/review")
    with site.client(headers={"Authorization": f"Bearer {dave}"}) as api:
        bearer = api.get("/review")
    assert listing.status_code == task_page.status_code == again.status_code == 303
    assert listing.headers["location"].startswith("/review/login")
    assert bearer.status_code == 303
    reviewers.remove("dave")


# -- merging


def test_merging_on_the_page_needs_an_approval_then_moves_main_once(site: Site, carol: httpx2.Client) -> None:
    base = git(site.repo, "rev-parse", "main")
    head = site.head("merge")
    shown = page(carol, site.path("merge"))
    csrf = hidden(shown, "csrf")
    assert "/merge" not in shown, "no Merge button before an approval"

    since = before(site, "merge")
    early = carol.post(site.path("merge", "/merge"), data={"csrf": csrf})
    assert early.status_code == 409
    assert alert(early.text) == "merge_pr refused: no approval of the current head by a human reviewer"
    gate_refusal(site, "merge", since, "merge_pr")

    approved = carol.post(site.path("merge", "/decide"), data={"action": "approve_pr", "csrf": csrf, "head_sha": head})
    assert approved.status_code == 303 and site.task("merge").state == TaskState.APPROVED
    assert f'action="{site.path("merge", "/merge")}"' in page(carol, site.path("merge"))

    merged = carol.post(site.path("merge", "/merge"), data={"csrf": csrf})
    assert merged.status_code == 303
    assert merged.headers["location"] == site.path("merge", "?done=merge_pr")
    assert site.task("merge").state == TaskState.MERGED
    event = site.events("merge")[-1]
    assert (event.action, event.actor) == ("pr_merged", "human:carol")
    main = git(site.repo, "rev-parse", "main")
    assert main == event.payload["merge_commit"] != base
    assert git(site.repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [base, head]
    assert "def double(x: int) -> int:" in git(site.repo, "show", "main:calc/arith.py")
    after = page(carol, merged.headers["location"])
    assert "Done: merge pr." in after and task_state(after) == "merged" and "Merged as" in after

    since = before(site, "merge")
    again = carol.post(site.path("merge", "/merge"), data={"csrf": csrf})
    assert again.status_code == 409
    assert alert(again.text) == "merge_pr refused: the PR is already merged"
    gate_refusal(site, "merge", since, "merge_pr")
    assert git(site.repo, "rev-parse", "main") == main


# -- what the pages show


def test_untrusted_text_is_escaped_and_the_pages_may_run_no_script(site: Site, carol: httpx2.Client) -> None:
    listing = carol.get("/review")
    task_page = carol.get(site.path("shared"))
    login_form = carol.get("/review/login")
    for response in (listing, task_page):
        assert response.status_code == 200
        assert "<script" not in response.text.lower() and "<img" not in response.text.lower()
        assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in response.text
    assert "&lt;img src=x onerror=alert(&#x27;request&#x27;)&gt;" in task_page.text

    hl = re.search(r'<div class="hl">(.*?)</div>', task_page.text, re.DOTALL)
    assert hl is not None, "the diff is highlighted"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hl.group(1)
    assert f"+{XSS_LINE}" in unescape(re.sub(r"<[^>]+>", "", hl.group(1)))

    for response in (listing, task_page, login_form):
        policy = csp(response)
        assert policy["default-src"] == "'none'"
        assert "script-src" not in policy and "script-src-elem" not in policy
        assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'self'"
        assert response.headers["x-content-type-options"] == "nosniff"


# -- limits


def test_an_oversized_form_is_413_and_decides_nothing(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("shared"))
    fields = {"action": "approve_pr", "csrf": hidden(shown, "csrf"), "head_sha": hidden(shown, "head_sha")}
    since = before(site, "shared")
    sized = carol.post(site.path("shared", "/decide"), data={**fields, "comment": "x" * (65 * 1024)})

    # The same without a Content-Length: chunked, so only counting the bytes read can stop it.
    encoded = "&".join(f"{k}={v}" for k, v in {**fields, "comment": "y" * (65 * 1024)}.items()).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(encoded), 8192):
            yield encoded[start : start + 8192]

    streamed = carol.post(site.path("shared", "/decide"), content=chunks(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    for response in (sized, streamed):
        assert response.status_code == 413
        assert "The form is too large or malformed." in response.text
    assert added(site, "shared", since) == [], "nothing is recorded, least of all a decision"


def test_logging_out_ends_the_session_even_for_a_copy_of_its_cookie(site: Site) -> None:
    with site.client() as client:
        login(client, site.token)
        copy = client.cookies["shipway_review"]
        csrf = hidden(page(client, "/review"), "csrf")
        assert client.post("/review/logout", data={"csrf": csrf}).status_code == 303
    with site.client(cookies={"shipway_review": copy}) as replay:
        assert replay.get("/review").status_code == 303


def test_a_forged_logout_does_not_end_the_session(site: Site, carol: httpx2.Client) -> None:
    cookie = carol.cookies["shipway_review"]
    with site.client(cookies={"shipway_review": cookie}) as forger:
        forger.post("/review/logout", data={}, headers={"Sec-Fetch-Site": "cross-site"})
    assert carol.get("/review").status_code == 200


def test_an_agents_preview_request_is_approved_on_the_page_and_deployed(site: Site, carol: httpx2.Client) -> None:
    shown = page(carol, site.path("preview"))
    assert 'id="preview-state">awaiting_approval<' in shown
    head = site.head("preview")
    assert hidden(shown, "head_sha") == head and 'name="action" value="approve_preview"' in shown
    try:
        response = carol.post(
            site.path("preview", "/decide"),
            data={"action": "approve_preview", "csrf": hidden(shown, "csrf"), "head_sha": head},
            headers={"Origin": site.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert response.status_code == 303, response.text
        actions = [(e.action, e.actor) for e in site.events("preview")]
        assert actions[-4:] == [
            ("preview_requested", "agent:mcp-client"), ("preview_approved", "human:carol"),
            ("preview_started", "human:carol"), ("preview_ready", "system:previews"),
        ]  # fmt: skip
        url = site.events("preview")[-1].payload["url"]
        assert httpx2.get(url, timeout=10).text == "<h1>Approved preview</h1>\n"
        after = page(carol, response.headers["location"])
        assert 'id="preview-state">ready<' in after and f'href="{url}"' in after
        assert "approve_preview" not in after, "nothing waits for approval any more"
    finally:
        subprocess.run([SHIPWAY, "preview", "stop", site.tasks["preview"].id, "--repo", str(site.repo)],
                       check=True, capture_output=True, timeout=60, env={**os.environ, **SERVER_ENV})  # fmt: skip
    assert site.events("preview")[-1].action == "preview_stopped"
