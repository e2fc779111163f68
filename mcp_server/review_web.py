"""The review site under /review: reviewer login, sessions, CSRF, and the decision endpoints.

Who may act: a reviewer, identified by the token `shipway reviewer add` printed for them, sent
either once to log in (then a signed, HttpOnly, SameSite=Strict session cookie) or on every
request as `Authorization: Bearer <token>` (scripts). Without either, pages redirect to the
login form and actions answer 401.

Forged requests: every form carries a CSRF token derived from the session (HMAC with the
server's secret); a POST whose token is missing or wrong, or whose Origin / Sec-Fetch-Site says
it came from another site, is refused with 403. Bearer requests need no CSRF token: browsers
never attach that header on their own. Refused attempts on a task go into its event log.

Decisions go through the same `ReviewGate` methods as the CLI and the reviewer tools, as
`human:<reviewer name>`; the page adds no rules of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qsl, quote, urlparse

from itsdangerous import BadSignature, URLSafeTimedSerializer
from mcp.server.mcpserver import MCPServer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mcp_server.app import ServerDeps
from mcp_server.errors import UserInputError
from mcp_server.metrics import collect
from mcp_server.metrics_page import render_metrics
from mcp_server.review_gate import live_preview_url
from mcp_server.review_page import TaskView, layout, render_login, render_task, render_task_list
from mcp_server.reviewers import Reviewer, ReviewerStore
from mcp_server.tasks.machine import TERMINAL
from mcp_server.tasks.model import Actor
from sandbox.errors import WorktreeError
from sandbox.host_git import GitError, driver_overrides, run_git
from tools.errors import ToolInputError

log = logging.getLogger(__name__)

PREFIX = "/review"
COOKIE = "shipway_review"
SESSION_MAX_AGE_S = 12 * 3600
MAX_FORM_BYTES = 64 * 1024
DECISIONS = ("approve_plan", "reject_plan", "approve_pr", "request_changes", "reject_pr", "approve_preview")
PAGE_ERRORS = (UserInputError, ToolInputError, WorktreeError, GitError)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` on the page's
    # own form posts, which the CSRF check must treat as suspect.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Session:
    reviewer: str
    csrf: str
    via_bearer: bool
    nonce: str = ""


class ReviewSite:
    def __init__(self, deps: ServerDeps, secret: bytes | None = None) -> None:
        self.deps = deps
        self.reviewers = ReviewerStore(deps.settings.state_path)
        self._secret = secret or secrets.token_bytes(32)
        self._cookies = URLSafeTimedSerializer(self._secret, salt="shipway-review-session")
        self._ended: set[str] = set()  # nonces of sessions logged out (cookies are stateless)

    # -- identity

    def _csrf_for(self, nonce: str) -> str:  # a per-session secret the forms carry
        return hmac.new(self._secret, f"csrf:{nonce}".encode(), hashlib.sha256).hexdigest()

    def session(self, request: Request) -> Session | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            found = self.reviewers.verify(header[7:].strip())
            return Session(found.name, "", via_bearer=True) if found else None
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._cookies.loads(raw, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("r"), str):
            return None
        # The session names the token it came from: re-keying or removing a reviewer ends it.
        current = {r.name: r.token_sha256[:16] for r in self.reviewers.all()}
        nonce = str(data.get("n", ""))
        if current.get(data["r"]) != data.get("k") or not nonce or nonce in self._ended:
            return None
        return Session(str(data["r"]), self._csrf_for(nonce), via_bearer=False, nonce=nonce)

    def end(self, session: Session) -> None:
        self._ended.add(session.nonce)

    def cookie_for(self, reviewer: Reviewer) -> str:
        return self._cookies.dumps({"r": reviewer.name, "k": reviewer.token_sha256[:16], "n": secrets.token_hex(16)})

    def forged(self, request: Request, session: Session, form: dict[str, str]) -> str | None:
        """Why this POST looks forged, or None. Bearer requests cannot be forged by a browser."""
        if session.via_bearer:
            return None
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"the request came from another site (Sec-Fetch-Site: {site})"
        origin = request.headers.get("origin")
        if origin == "null" and site != "same-origin":  # Sec-Fetch-Site is set by the browser, never by a page
            return "the request came from an opaque origin"
        if origin not in (None, "null") and urlparse(origin).netloc != request.headers.get("host"):
            return "the request came from another origin"
        given = form.get("csrf", "").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, session.csrf.encode()):
            return "the form's CSRF token is missing or wrong; reload the page and try again"
        return None

    # -- data

    def gather(self, task_id: str) -> TaskView:
        deps = self.deps
        task_id = deps.tasks.get(task_id).id
        problems: dict[str, str] = {}
        plan = pr = None
        try:
            plan = deps.gate.plan(task_id)
        except PAGE_ERRORS as exc:
            problems["plan"] = str(exc)
        try:
            pr = deps.gate.pr(task_id)
        except PAGE_ERRORS as exc:
            problems["pr"] = f"The pull request could not be read: {exc}"
        # Read the task and its log after the PR: reading it may have imported forge reviews.
        events = deps.tasks.store.events(task_id)
        view = TaskView(task=deps.tasks.get(task_id), events=events, plan=plan, pr=pr, problems=problems,
                        preview_url=live_preview_url(events))  # fmt: skip
        try:
            view.preview = deps.previews.status(task_id)
        except PAGE_ERRORS as exc:
            view.problems["preview"] = f"The preview could not be read: {exc}"
        self._add_diff(view)
        runs = [e for e in events if e.action == "tests_run" and e.payload.get("run_id")]
        if runs:
            try:
                view.tests = deps.tests.report(str(runs[-1].payload["run_id"]))
            except PAGE_ERRORS as exc:
                view.problems["tests"] = str(exc)
        return view

    def _add_diff(self, view: TaskView) -> None:
        task = view.task
        try:
            if task.state not in TERMINAL:
                diff = self.deps.workspaces.diff(task.id)
                view.diff, view.diff_truncated = diff.diff, diff.truncated
                return
            head = view.pr.head_sha if view.pr else None
            if head and head != task.base_commit:
                repo = self.deps.workspaces.manager_for(task).repo
                view.diff = run_git(repo, "diff", "--no-color", "--no-ext-diff", task.base_commit, head,
                                    overrides=driver_overrides(repo)).stdout  # fmt: skip
        except PAGE_ERRORS as exc:
            view.problems["diff"] = f"The diff could not be read: {exc}"

    def record_refusal(self, task_id: str, attempt: str, reason: str, extra: dict[str, Any] | None = None) -> None:
        try:
            task = self.deps.tasks.get(task_id)
        except UserInputError:
            return  # no such task: nothing to record it on
        if task.state in TERMINAL:
            return
        payload = {"attempt": attempt, "reason": reason, "via": "review page", **(extra or {})}
        self.deps.tasks.store.record(task.id, actor="system:review-page", action="gate_refused", payload=payload)

    def act(self, task_id: str, action: str, form: dict[str, str], reviewer: str, merge: bool = False) -> None:
        """Apply one decision (or, from /merge only, the merge) as `human:<reviewer>` through the gate."""
        gate, actor = self.deps.gate, Actor(kind="human", name=reviewer)
        comment = form.get("comment", "")
        if action not in DECISIONS and not (merge and action == "merge_pr"):
            raise UserInputError(f"unknown action {action!r}; one of {', '.join(DECISIONS)}")
        if action == "merge_pr":
            gate.merge_pr(task_id, actor)
        elif action == "approve_plan":
            gate.approve_plan(task_id, comment, actor, form.get("plan_sha256") or None)
        elif action == "reject_plan":
            gate.reject_plan(task_id, comment, actor)
        elif action == "approve_pr":
            gate.approve_pr(task_id, comment, actor, form.get("head_sha") or None)
        elif action == "request_changes":
            gate.request_changes(task_id, comment, actor)
        elif action == "reject_pr":
            gate.reject_pr(task_id, comment, actor)
        elif action == "approve_preview":
            self.deps.previews.approve(task_id, actor, form.get("head_sha") or None)


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def _task_path(task_id: str) -> str:
    return f"{PREFIX}/tasks/{quote(task_id, safe='')}"


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form, or None when it is oversized or not a form."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: value for key, value in pairs}


Handler = Callable[[Request], Awaitable[Response]]


def _unauthorized() -> Response:
    body = '{"error": "unauthorized", "hint": "log in at /review/login or send Authorization: Bearer <reviewer token>"}'
    return Response(body, status_code=401, media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="shipway-review"'})  # fmt: skip


def _to_login(request: Request) -> Response:
    target = request.url.path if request.url.path.startswith(PREFIX) else PREFIX
    return RedirectResponse(f"{PREFIX}/login?next={quote(target, safe='/')}", status_code=303)


def _local_path(path: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if not path or not path.startswith(PREFIX) or "//" in path or "\\" in path:
        return PREFIX
    return path


class ReviewRoutes:
    """The HTTP handlers; each one is thin and defers to `ReviewSite` and the gate."""

    def __init__(self, site: ReviewSite) -> None:
        self.site = site
        self.deps = site.deps

    def mount(self, server: MCPServer) -> None:
        for path, methods, handler in (
            (f"{PREFIX}/login", ["GET"], self.login_form),
            (f"{PREFIX}/login", ["POST"], self.login),
            (f"{PREFIX}/logout", ["POST"], self.logout),
            (PREFIX, ["GET"], self.task_list),
            (f"{PREFIX}/metrics", ["GET"], self.metrics),
            (PREFIX + "/tasks/{task_id}", ["GET"], self.task_page),
            (PREFIX + "/tasks/{task_id}/decide", ["POST"], self.decide),
            (PREFIX + "/tasks/{task_id}/merge", ["POST"], self.merge),
        ):
            server.custom_route(path, methods=methods)(handler)

    async def login_form(self, request: Request) -> Response:
        return _html(render_login(next_path=_local_path(request.query_params.get("next"))))

    async def login(self, request: Request) -> Response:
        form = await _form(request) or {}
        reviewer = await run_in_threadpool(self.site.reviewers.verify, form.get("token", "").strip())
        if reviewer is None:
            return _html(render_login("That token is not a reviewer's token."), 401)
        response = RedirectResponse(_local_path(form.get("next")), status_code=303)
        response.set_cookie(COOKIE, self.site.cookie_for(reviewer), max_age=SESSION_MAX_AGE_S, path=PREFIX,
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        log.info("reviewer %s logged in to the review page", reviewer.name)
        return response

    async def logout(self, request: Request) -> Response:
        session = self.site.session(request)
        form = await _form(request) or {}
        if session is not None and not session.via_bearer and self.site.forged(request, session, form) is None:
            self.site.end(session)  # only the page's own button can end a session
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    async def task_list(self, request: Request) -> Response:
        session = self.site.session(request)
        if session is None:
            return _to_login(request)
        page = await run_in_threadpool(self.deps.tasks.page, None, 100)
        return _html(render_task_list(page, str(self.deps.settings.repo), session.reviewer, session.csrf))

    async def metrics(self, request: Request) -> Response:
        session = self.site.session(request)
        if session is None:
            return _to_login(request)
        metrics = await run_in_threadpool(collect, self.deps.tasks)
        return _html(render_metrics(metrics, session.reviewer, session.csrf))

    async def task_page(self, request: Request) -> Response:
        session = self.site.session(request)
        if session is None:
            return _to_login(request)
        try:
            view = await run_in_threadpool(self.site.gather, request.path_params["task_id"])
        except UserInputError as exc:
            return _html(_error_page(str(exc), session), 404)
        done = request.query_params.get("done", "")
        notice = f"Done: {done.replace('_', ' ')}." if done in (*DECISIONS, "merge_pr") else ""
        return _html(render_task(view, session.reviewer, session.csrf, notice=notice))

    async def decide(self, request: Request) -> Response:
        return await self._act(request, merge=False)

    async def merge(self, request: Request) -> Response:
        return await self._act(request, merge=True)

    async def _act(self, request: Request, merge: bool) -> Response:
        site, task_id = self.site, request.path_params["task_id"]
        form = await _form(request)
        attempt = "merge_pr" if merge else (form or {}).get("action", "")[:40] or "decide"
        session = site.session(request)
        if session is None:
            await run_in_threadpool(site.record_refusal, task_id, attempt, "no reviewer token (HTTP 401)")
            return _unauthorized()
        if form is None:
            return _html(_error_page("The form is too large or malformed.", session), 413)
        why = site.forged(request, session, form)
        if why is not None:
            await run_in_threadpool(site.record_refusal, task_id, attempt, f"forged request: {why}",
                                    {"session_of": session.reviewer})  # fmt: skip
            return _html(_error_page(f"Refused: {why}.", session), 403)
        try:
            await run_in_threadpool(site.act, task_id, attempt, form, session.reviewer, merge)
        except PAGE_ERRORS as exc:
            try:
                view = await run_in_threadpool(site.gather, task_id)
            except UserInputError:
                return _html(_error_page(str(exc), session), 404)
            return _html(render_task(view, session.reviewer, session.csrf, error=str(exc)), 409)
        return RedirectResponse(f"{_task_path(task_id)}?done={attempt}", status_code=303)


def mount_review_site(server: MCPServer, deps: ServerDeps, secret: bytes | None = None) -> ReviewSite:
    site = ReviewSite(deps, secret)
    ReviewRoutes(site).mount(server)
    return site


def _error_page(message: str, session: Session) -> str:
    body = f'<section class="error"><p>{escape(message)}</p><p><a href="{PREFIX}">All tasks</a></p></section>'
    return layout("Error", body, session.reviewer, session.csrf)
