"""The review page in a real headless Chromium: log in, read a task, approve it, merge it; and a forged form.

The repository is prepared with the real sandbox and CI (two tasks waiting in review), then a
real `shipway serve --http` subprocess serves it and Debian's Chromium, driven by Playwright,
uses the page as a reviewer would: typing into the forms and clicking the buttons. A full-page
screenshot of the merged task is saved to $SHIPWAY_TEST_ARTIFACTS (default: test-artifacts/).

The forged forms come from "evil" pages on other local servers: one on another host (127.0.0.2,
cross-site: the SameSite=Strict cookie stays home) and one on another port of the same host
(same-site: the cookie goes along, Sec-Fetch-Site gives it away).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("Playwright for Python is not installed (pip install playwright)", allow_module_level=True)

from mcp_server.reviewers import ReviewerStore
from mcp_server.tasks.model import Task, TaskState
from tests.helpers.gitrepo import git
from tests.helpers.review_site import SERVER_ENV, clean_env, read_events, read_task, refs, task_in_review
from tests.helpers.servers import http_server
from tests.test_ci_gate import green_sample
from tests.test_review_gate import ADD_DOUBLE, PLAN, TEST_DOUBLE, open_green

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)", allow_module_level=True)

# Read at import: conftest's autouse fixture clears every SHIPWAY_* variable before each test.
_ARTIFACTS = Path(os.environ.get("SHIPWAY_TEST_ARTIFACTS", "test-artifacts"))
ARTIFACTS = _ARTIFACTS if _ARTIFACTS.is_absolute() else Path(__file__).resolve().parents[1] / _ARTIFACTS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FLOW_REQUEST = "Add a double() helper to calc.arith"
TARGET_REQUEST = "Add double() with its test, read in the browser"
COMMENT = "Looks right: double() and its test. Merging."


@dataclass
class Served:
    repo: Path
    url: str
    token: str
    flow: Task  # approved and merged in the browser
    target: Task  # read in the browser, and what the forged forms aim at: it stays in review


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with clean_env():
        repo = green_sample(tmp_path_factory.mktemp("review-browser") / "repo")
        deps = open_green(repo)
        try:
            flow = task_in_review(deps, FLOW_REQUEST, ADD_DOUBLE)
            target = task_in_review(deps, TARGET_REQUEST, ADD_DOUBLE, TEST_DOUBLE)
        finally:
            deps.ci.close()
            deps.tasks.store.close()
        token = ReviewerStore(repo / ".shipway").add("carol")
        with http_server(repo, env=SERVER_ENV) as server:
            yield Served(repo, server.base_url, token, flow, target)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        opened.close()
        context.close()


def log_in(page: Page, served: Served) -> None:
    page.goto(f"{served.url}/review")
    expect(page).to_have_url(f"{served.url}/review/login?next=/review")
    expect(page.get_by_role("heading", name="Reviewer login")).to_be_visible()
    page.get_by_label("Token").fill(served.token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{served.url}/review")


def watch_console(page: Page) -> list[str]:
    """Errors the page reports (a CSP violation is one): the pages must run and load nothing refused."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A failed load is reported as a response below, where its URL is known.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    def response(answer: Response) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):  # the site serves no icon
            problems.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", response)
    return problems


def test_a_reviewer_logs_in_and_reads_the_whole_task_in_the_browser(page: Page, served: Served) -> None:
    task = served.target
    head = git(served.repo, "rev-parse", f"shipway/{task.id}")
    problems = watch_console(page)

    log_in(page, served)
    row = page.locator("tbody tr", has_text=task.id)
    expect(row).to_contain_text(TARGET_REQUEST)
    expect(row.locator(".state")).to_have_text("review")
    row.get_by_role("link", name=task.id).click()
    expect(page).to_have_url(f"{served.url}/review/tasks/{task.id}")

    expect(page.locator("#task-state")).to_have_text("review")
    expect(page.locator("#plan")).to_contain_text(PLAN.goal)
    for step in PLAN.steps:
        expect(page.locator("#plan")).to_contain_text(step)
    diff = page.locator("#diff .hl")
    expect(diff).to_be_visible()
    expect(diff).to_contain_text("+    return 2 * x")
    expect(diff).to_contain_text("+++ b/tests/test_double.py")
    expect(diff.locator("span.gi").first).to_be_visible()  # Pygments marked the added lines
    tests = page.locator("#tests")
    expect(tests).to_contain_text("passed")
    expect(tests).to_contain_text("0 failed, 0 errors")
    expect(page.locator("#ci-state")).to_have_text("success")
    expect(page.locator("#pr")).to_contain_text(head[:12])
    expect(page.locator("#pr")).to_contain_text("no approval of the current head")
    for action in ("created", "plan_approved", "edit_applied", "tests_run", "pr_opened", "ci_passed"):
        expect(page.locator("#events")).to_contain_text(action)
    for section in ("#plan", "#pr", "#diff", "#tests", "#events"):
        expect(page.locator(section)).to_be_visible()
    decide = page.locator("form.decide")
    for label in ("Approve", "Request changes", "Reject"):
        expect(decide.get_by_role("button", name=label, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Merge")).to_have_count(0)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "review-page.png"
    shot.unlink(missing_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file() and shot.read_bytes()[:8] == PNG_MAGIC
    assert problems == []


def test_a_reviewer_approves_and_merges_a_task_in_the_browser(page: Page, served: Served) -> None:
    task = served.flow
    base = git(served.repo, "rev-parse", "main")
    head = git(served.repo, "rev-parse", f"shipway/{task.id}")
    task_url = f"{served.url}/review/tasks/{task.id}"
    problems = watch_console(page)
    log_in(page, served)
    page.locator("tbody tr", has_text=task.id).get_by_role("link", name=task.id).click()
    expect(page.locator("#task-state")).to_have_text("review")

    decide = page.locator("form.decide")
    decide.get_by_label("Comment").fill(COMMENT)
    with page.expect_response(f"{task_url}/decide") as answered:
        decide.get_by_role("button", name="Approve", exact=True).click()
    assert answered.value.status == 303, page.locator("main").inner_text()
    expect(page).to_have_url(f"{task_url}?done=approve_pr")
    expect(page.get_by_role("status")).to_have_text("Done: approve pr.")
    expect(page.locator("#task-state")).to_have_text("approved")
    approval = page.locator("#events tr", has_text="pr_approved")
    expect(approval).to_contain_text("human:carol")
    expect(approval).to_contain_text(f"comment={COMMENT}")

    with page.expect_response(f"{task_url}/merge") as answered:
        page.get_by_role("button", name="Merge").click()
    assert answered.value.status == 303, page.locator("main").inner_text()
    expect(page).to_have_url(f"{task_url}?done=merge_pr")
    expect(page.locator("#task-state")).to_have_text("merged")
    expect(page.locator("#events tr", has_text="pr_merged")).to_contain_text("human:carol")
    expect(page.locator("#pr")).to_contain_text("Merged as")
    page.screenshot(path=str(ARTIFACTS / "review-page-merged.png"), full_page=True)
    assert problems == []

    assert read_task(served.repo, task.id).state == TaskState.MERGED
    decisions = [(e.action, e.actor, e.payload.get("comment")) for e in read_events(served.repo, task.id)[-2:]]
    assert decisions == [("pr_approved", "human:carol", COMMENT), ("pr_merged", "human:carol", None)]
    merged = git(served.repo, "rev-parse", "main")
    assert git(served.repo, "rev-list", "--parents", "-n", "1", "main").split() == [merged, base, head]
    assert "def double(x: int) -> int:" in git(served.repo, "show", "main:calc/arith.py")


def _evil_site(host: str, html: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    body = html.encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Evil)
    thread = threading.Thread(target=server.serve_forever, name=f"evil-{host}", daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize(
    ("host", "status", "reason"),
    [
        ("127.0.0.2", 401, "no reviewer token (HTTP 401)"),  # another site: the cookie is not sent
        ("127.0.0.1", 403, "(Sec-Fetch-Site: same-site)"),  # the same site on another port: it is
    ],
    ids=["cross-site", "same-site-other-port"],
)
def test_a_forged_form_on_another_site_cannot_approve_from_a_logged_in_browser(
    page: Page, served: Served, host: str, status: int, reason: str
) -> None:
    task = served.target
    decide_url = f"{served.url}/review/tasks/{task.id}/decide"
    head = git(served.repo, "rev-parse", f"shipway/{task.id}")
    log_in(page, served)
    cookie = next(c for c in page.context.cookies() if c["name"] == "shipway_review")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/review")

    evil_html = (
        "<!doctype html><title>Win a prize</title>"
        f'<form method="post" action="{escape(decide_url, quote=True)}">'
        '<input type="hidden" name="action" value="approve_pr">'
        '<input type="hidden" name="comment" value="approved by a forged form">'
        '<input type="hidden" name="csrf" value="guessed">'
        f'<input type="hidden" name="head_sha" value="{head}">'
        "<button>Claim your prize</button></form>"
    )
    evil, thread = _evil_site(host, evil_html)
    state, count = read_task(served.repo, task.id).state, len(read_events(served.repo, task.id))
    refs_before = refs(served.repo)
    try:
        page.goto(f"http://{host}:{evil.server_address[1]}/")
        with page.expect_response(decide_url) as answered:
            page.get_by_role("button", name="Claim your prize").click()
        assert answered.value.status == status
    finally:
        evil.shutdown()
        evil.server_close()
        thread.join(timeout=10)

    assert state == TaskState.REVIEW and read_task(served.repo, task.id).state == TaskState.REVIEW
    assert refs(served.repo) == refs_before
    new = read_events(served.repo, task.id)[count:]
    assert [(e.action, e.actor) for e in new] == [("gate_refused", "system:review-page")], new
    assert new[0].payload["attempt"] == "approve_pr" and reason in new[0].payload["reason"]
    # Whether the browser sent the session cookie along: only to the same site.
    assert new[0].payload.get("session_of") == ("carol" if host == "127.0.0.1" else None)

    # The reviewer's own page still works and shows the refused attempt.
    page.goto(f"{served.url}/review/tasks/{task.id}")
    expect(page.locator("#task-state")).to_have_text("review")
    expect(page.locator("#events tbody tr").last).to_contain_text("gate_refused")
    expect(page.locator("#events tbody tr").last).to_contain_text(reason)
    assert "pr_approved" not in page.locator("#events").inner_text()
