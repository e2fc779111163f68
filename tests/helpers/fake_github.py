"""A stateful fake of GitHub on 127.0.0.1: REST API v3, git smart HTTP, and two GraphQL mutations.

PyGithub and the `git` CLI talk to it over real HTTP. Users, pull requests, reviews, comments, statuses and check
runs live in memory; repositories are real bare git repositories under `root`. An open pull request's head and
base SHAs are read live from the bare repository's branches (so a push updates it), mergeability is computed with
`git merge-tree`, and merging really moves the base branch.

Deliberately GitHub-like behaviour worth knowing:
- `GET /pulls?head=branch` without an `owner:` prefix ignores the filter, as GitHub does.
- Lists are paginated like GitHub (`per_page` default 30, max 100, `page`), with a `Link` header when there are
  more pages; PyGithub's PaginatedList follows it.
- An open pull request whose head or base branch has been deleted is closed the next time it is looked at.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import math
import os
import re
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

JSON = dict[str, Any]

_API = "/api/v3"
_GRAPHQL = "/api/graphql"
_GIT_PATH = re.compile(
    r"/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|git-receive-pack)"
)
# What GitHub uses as the committer of the commits it makes when merging.
_GITHUB_IDENTITY = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}
_REVIEW_STATES = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
_OWN_REVIEW_ERRORS = {
    "APPROVE": "Can not approve your own pull request",
    "REQUEST_CHANGES": "Can not request changes on your own pull request",
}
_STATUS_STATES = ("error", "failure", "pending", "success")
_CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
_CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
_MERGE_METHODS = ("merge", "squash", "rebase")
_FILE_STATUSES = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
_ZERO_SHA = "0" * 40
_GIT_TIMEOUT = 60


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_utc(stamp: str) -> str:
    """Git's strict ISO 8601 (with an offset) as GitHub writes timestamps: UTC with a Z."""
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every git the fake runs: no inherited GIT_*, no user or system config, never prompts."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", **_GITHUB_IDENTITY)
    env.update(extra or {})
    return env


def _git(
    cwd: Path, *args: str, check: bool = True, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=_git_env(env),
        check=check,
        timeout=_GIT_TIMEOUT,
    )


def _split_full_name(full_name: str) -> tuple[str, str]:
    owner, sep, name = full_name.partition("/")
    if not sep or not owner or not name or "/" in name or name.endswith(".git"):
        raise ValueError(f"not an owner/name repository name: {full_name!r}")
    return owner, name


def _read_chunked(stream: BufferedIOBase) -> bytes:
    """A `Transfer-Encoding: chunked` request body (git uses it for big pushes). Raises ValueError if malformed."""
    parts: list[bytes] = []
    while True:
        size = int(stream.readline(1024).split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:
            break
        parts.append(stream.read(size))
        if stream.readline(8).strip():
            raise ValueError("chunk not followed by CRLF")
    while stream.readline(8192).strip():  # trailers
        pass
    return b"".join(parts)


def _parse_raw_diff(tokens: list[str]) -> list[tuple[str, str, str, str | None]]:
    """`git diff --raw -z` records as (status letter, blob sha, path, previous path)."""
    records: list[tuple[str, str, str, str | None]] = []
    stream = iter(tokens)
    for meta in stream:
        if not meta.startswith(":"):
            continue
        _, _, old_sha, new_sha, status = meta[1:].split()
        first = next(stream)
        path, previous = (next(stream), first) if status[0] in "RC" else (first, None)
        records.append((status[0], new_sha if new_sha != _ZERO_SHA else old_sha, path, previous))
    return records


def _parse_numstat(tokens: list[str]) -> dict[str, tuple[int, int]]:
    """`git diff --numstat -z` as {path: (additions, deletions)}; binary files count as 0/0."""
    counts: dict[str, tuple[int, int]] = {}
    stream = iter(tokens)
    for record in stream:
        if record.count("\t") < 2:
            continue
        added, deleted, path = record.split("\t", 2)
        if not path:  # a rename: the old and the new path follow
            next(stream)
            path = next(stream)
        counts[path] = (int(added) if added.isdigit() else 0, int(deleted) if deleted.isdigit() else 0)
    return counts


def _parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split CGI output into a status, headers and the body; a `Status:` header gives the HTTP status."""
    cut = min((i for i in (output.find(b"\r\n\r\n"), output.find(b"\n\n")) if i >= 0), default=-1)
    if cut < 0:
        return 502, {"Content-Type": "text/plain"}, b"git http-backend said nothing usable\n"
    head, body = output[:cut], output[cut:].lstrip(b"\r\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            status = int(value.split()[0])
        elif name.strip():
            headers[name.strip()] = value.strip()
    return status, headers, body


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, str]
    login: str | None  # None when unauthenticated
    status: int


class _ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload: JSON = {"message": message}
        if errors is not None:
            self.payload["errors"] = errors


def _not_found(message: str = "Not Found") -> _ApiError:
    return _ApiError(404, message)


def _validation(message: str, *, field_name: str | None = None, code: str = "custom") -> _ApiError:
    """GitHub's 422: `{"message": "Validation Failed", "errors": [...]}`, each error with a readable message."""
    error: JSON = {"resource": "PullRequest", "code": code, "message": message}
    if field_name is not None:
        error["field"] = field_name
    return _ApiError(422, "Validation Failed", [error])


def _unprocessable(message: str) -> _ApiError:
    """A 422 whose message says what is wrong (GitHub puts such texts in `errors` as plain strings)."""
    return _ApiError(422, message, [message])


@dataclass
class _User:
    login: str
    token: str
    kind: str
    id: int


@dataclass
class _Review:
    id: int
    user: str
    body: str
    state: str
    commit_id: str
    submitted_at: str | None


@dataclass
class _Pull:
    id: int
    number: int
    title: str
    body: str | None
    user: str
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    draft: bool
    created_at: str
    updated_at: str
    state: str = "open"
    closed_at: str | None = None
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    reviews: list[_Review] = field(default_factory=list)

    @property
    def node_id(self) -> str:
        return f"PR_kwDO{self.id}"


@dataclass
class _Comment:
    id: int
    number: int
    user: str
    body: str
    created_at: str


@dataclass
class _Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str | None
    created_at: str


@dataclass
class _CheckRun:
    id: int
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    started_at: str
    completed_at: str | None = None
    details_url: str | None = None
    external_id: str | None = None
    title: str | None = None
    summary: str | None = None


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    path: Path
    default_branch: str
    created_at: str
    next_number: int = 1
    pulls: dict[int, _Pull] = field(default_factory=dict)
    comments: list[_Comment] = field(default_factory=list)
    statuses: list[_Status] = field(default_factory=list)
    check_runs: list[_CheckRun] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class _Call:
    """One authenticated REST request, as the route handlers see it."""

    method: str
    path: str  # below /api/v3, percent-decoded
    query: dict[str, str]
    body: Any
    login: str

    def json_body(self) -> JSON:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise _ApiError(400, "Problems parsing JSON")
        return self.body


@dataclass
class _Reply:
    status: int
    payload: Any = None  # JSON; nothing is sent for None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of a JSON payload

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.payload is None else json.dumps(self.payload).encode()


_RouteHandler = Callable[[_Call, "re.Match[str]"], _Reply]


def _str_field(data: JSON, name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise _validation(f"{name} is missing or not a string", field_name=name, code="missing_field")
    return value


class FakeGitHub:
    """GitHub's REST API (under /api/v3), git smart HTTP (/owner/name.git) and GraphQL (/api/graphql)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._users: dict[str, _User] = {}
        self._repos: dict[str, _Repo] = {}
        self._owner_ids: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._routes = self._build_routes()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeGitHub:
        if self._server is not None:
            raise RuntimeError("FakeGitHub is already started")
        self.root.mkdir(parents=True, exist_ok=True)
        server = _Server(self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-github", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        # Kept-alive client connections would keep their handler threads (which server_close joins) waiting.
        with self._connections_lock:
            live = list(self._connections)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ---------------------------------------------------------------- URLs

    @property
    def web_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeGitHub is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.web_url}{_API}"

    def git_url(self, full_name: str) -> str:
        return f"{self.web_url}/{full_name}.git"

    def _api_repo_url(self, repo: _Repo) -> str:
        return f"{self.base_url}/repos/{repo.full_name}"

    def _web_repo_url(self, repo: _Repo) -> str:
        return f"{self.web_url}/{repo.full_name}"

    # ---------------------------------------------------------------- Python API for tests

    def add_user(self, login: str, token: str, kind: str = "User") -> None:
        """A user (kind "User" or "Bot") whom `token` authenticates, for the API and for git over HTTP."""
        if kind not in ("User", "Bot"):
            raise ValueError(f"kind must be 'User' or 'Bot', not {kind!r}")
        with self._lock:
            if any(user.token == token for user in self._users.values()):
                raise ValueError("another user already has this token")
            self._users[login] = _User(login=login, token=token, kind=kind, id=next(self._ids))

    def add_repo(self, full_name: str, default_branch: str = "main", source: Path | None = None) -> Path:
        """Create <root>/owner/name.git, bare, with `source`'s branches and tags if given; returns its path."""
        owner, name = _split_full_name(full_name)
        path = self.root / owner / f"{name}.git"
        if full_name in self._repos or path.exists():
            raise ValueError(f"repository {full_name} already exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        _git(path.parent, "init", "--quiet", "--bare", "--initial-branch", default_branch, str(path))
        if source is not None and _git(source, "for-each-ref", "refs/heads").stdout.strip():
            refspecs = ("refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
            _git(source, "push", "--quiet", "--no-verify", str(path), *refspecs)
        with self._lock:
            self._repos[full_name] = _Repo(
                owner=owner,
                name=name,
                id=next(self._ids),
                path=path,
                default_branch=default_branch,
                created_at=_now(),
            )
        return path

    def bare_path(self, full_name: str) -> Path:
        with self._lock:
            return self._repos[full_name].path

    def pulls(self, full_name: str) -> list[JSON]:
        """Every pull request of the repository, open or not, by number, as `GET /pulls/{number}` shows it."""
        with self._lock:
            repo = self._repos[full_name]
            return [self._pull_json(repo, repo.pulls[number]) for number in sorted(repo.pulls)]

    def set_status(
        self,
        full_name: str,
        sha: str,
        state: str,
        context: str = "ci",
        description: str = "",
        target_url: str | None = None,
    ) -> None:
        """Post a commit status on `sha` (a SHA or ref) as CI would; it has no creator."""
        if state not in _STATUS_STATES:
            raise ValueError(f"state must be one of {_STATUS_STATES}, not {state!r}")
        with self._lock:
            repo = self._repos[full_name]
            self._add_status(repo, self._commit_or_raise(repo, sha), state, context, description, target_url, None)

    def add_check_run(
        self, full_name: str, sha: str, name: str, status: str = "completed", conclusion: str | None = "success"
    ) -> None:
        """Record a check run on `sha` (a SHA or ref); `conclusion` only counts when `status` is "completed"."""
        with self._lock:
            repo = self._repos[full_name]
            run = _CheckRun(
                id=next(self._ids),
                head_sha=self._commit_or_raise(repo, sha),
                name=name,
                status="queued",
                conclusion=None,
                started_at=_now(),
            )
            try:
                self._apply_check_run(
                    run, {"status": status, "conclusion": conclusion if status == "completed" else None}
                )
            except _ApiError as exc:
                raise ValueError(exc.payload["message"]) from None
            repo.check_runs.append(run)

    def _commit_or_raise(self, repo: _Repo, ref: str) -> str:
        sha = self._rev(repo, ref)
        if sha is None:
            raise ValueError(f"{ref!r} is not a commit in {repo.full_name}")
        return sha

    # ---------------------------------------------------------------- dispatch

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        split = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(split.path)
        query = {key: values[-1] for key, values in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        login: str | None = None
        git = _GIT_PATH.fullmatch(path)
        if path == _GRAPHQL or path.startswith(_API + "/"):
            reply, login = self._serve_api(method, path, query, headers, body)
        elif git is not None:
            reply, login = self._serve_git(method, git, split.query, headers, body)
        else:
            reply = _Reply(404, {"message": "Not Found"})
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, login, reply.status))
        return reply

    def _login_for(self, authorization: str | None) -> str | None:
        """The user an Authorization header authenticates: `token T`, `Bearer T`, or Basic with T as password."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        candidates = [credentials.strip()]
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            candidates = [password, user]  # GitHub also takes the token as the user name
        elif scheme.lower() not in ("token", "bearer"):
            return None
        with self._lock:
            for user_ in self._users.values():
                if user_.token and user_.token in candidates:
                    return user_.login
        return None

    def _serve_api(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[_Reply, str | None]:
        login = self._login_for(headers.get("authorization"))
        if login is None:
            return _Reply(401, {"message": "Bad credentials"}), None
        try:
            payload = json.loads(body) if body.strip() else None
        except ValueError:
            return _Reply(400, {"message": "Problems parsing JSON"}), login
        try:
            if path == _GRAPHQL:
                reply = self._graphql(method, login, payload)
            else:
                reply = self._rest(_Call(method, path[len(_API) :], query, payload, login))
        except _ApiError as exc:
            reply = _Reply(exc.status, exc.payload)
        return reply, login

    def _rest(self, call: _Call) -> _Reply:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(call.path)
            if match is not None and method == call.method:
                with self._lock:
                    return handler(call, match)
        raise _not_found()

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], _RouteHandler]]:
        r = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        pr = rf"{r}/pulls/(?P<number>\d+)"
        table: list[tuple[str, str, _RouteHandler]] = [
            ("GET", r"/user", self._get_authenticated_user),
            ("GET", r"/users/(?P<login>[^/]+)", self._get_user),
            ("GET", r, self._get_repo),
            ("GET", rf"{r}/pulls", self._list_pulls),
            ("POST", rf"{r}/pulls", self._create_pull),
            ("GET", pr, self._get_pull),
            ("PATCH", pr, self._update_pull),
            ("GET", rf"{pr}/commits", self._list_pull_commits),
            ("GET", rf"{pr}/files", self._list_pull_files),
            ("GET", rf"{pr}/reviews", self._list_reviews),
            ("POST", rf"{pr}/reviews", self._create_review),
            ("GET", rf"{pr}/reviews/(?P<id>\d+)", self._get_review),
            ("GET", rf"{pr}/merge", self._get_merged),
            ("PUT", rf"{pr}/merge", self._merge_pull),
            ("GET", rf"{r}/issues/(?P<number>\d+)", self._get_issue),
            ("GET", rf"{r}/issues/(?P<number>\d+)/comments", self._list_comments),
            ("POST", rf"{r}/issues/(?P<number>\d+)/comments", self._create_comment),
            ("GET", rf"{r}/issues/comments/(?P<id>\d+)", self._get_comment),
            ("GET", rf"{r}/commits/(?P<ref>.+)/status", self._get_combined_status),
            ("GET", rf"{r}/commits/(?P<ref>.+)/statuses", self._list_statuses),
            ("GET", rf"{r}/commits/(?P<ref>.+)/check-runs", self._list_check_runs),
            ("GET", rf"{r}/commits/(?P<ref>.+)", self._get_commit),
            ("GET", rf"{r}/statuses/(?P<ref>.+)", self._list_statuses),
            ("POST", rf"{r}/statuses/(?P<ref>[^/]+)", self._create_status),
            ("POST", rf"{r}/check-runs", self._create_check_run),
            ("GET", rf"{r}/check-runs/(?P<id>\d+)", self._get_check_run),
            ("PATCH", rf"{r}/check-runs/(?P<id>\d+)", self._update_check_run),
            ("GET", rf"{r}/branches/(?P<branch>.+)", self._get_branch),
            ("GET", rf"{r}/git/refs?/(?P<ref>heads/.+)", self._get_git_ref),
            ("DELETE", rf"{r}/git/refs/(?P<ref>heads/.+)", self._delete_git_ref),
        ]
        return [(method, re.compile(pattern), handler) for method, pattern, handler in table]

    def _paginate(self, call: _Call, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        """One page of `items` as GitHub pages them, and the Link header pointing at the others."""

        def number(name: str, default: int) -> int:
            value = call.query.get(name, "")
            return int(value) if value.isdigit() and int(value) > 0 else default

        per_page = min(number("per_page", 30), 100)
        page = number("page", 1)
        last = max(1, math.ceil(len(items) / per_page))

        def link(target: int, rel: str) -> str:
            query = urllib.parse.urlencode({**call.query, "per_page": per_page, "page": target})
            return f'<{self.base_url}{urllib.parse.quote(call.path)}?{query}>; rel="{rel}"'

        links = [link(page + 1, "next"), link(last, "last")] if page < last else []
        links += [link(page - 1, "prev"), link(1, "first")] if page > 1 else []
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _page_reply(self, call: _Call, items: list[Any]) -> _Reply:
        page, headers = self._paginate(call, items)
        return _Reply(200, page, headers)

    # ---------------------------------------------------------------- git helpers

    def _rev(self, repo: _Repo, ref: str) -> str | None:
        """The commit `ref` (a SHA or a ref name) names in the bare repository, or None."""
        if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
            return None
        proc = _git(repo.path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def _branch_sha(self, repo: _Repo, branch: str) -> str | None:
        return self._rev(repo, f"refs/heads/{branch}")

    def _is_ancestor(self, repo: _Repo, ancestor: str, descendant: str) -> bool:
        return _git(repo.path, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def _merge_tree(self, repo: _Repo, base: str, head: str) -> str | None:
        """The tree merging `head` into `base` gives, or None when they conflict."""
        proc = _git(repo.path, "merge-tree", "--write-tree", "--no-messages", base, head, check=False)
        return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.strip() else None

    def _diff_stats(self, repo: _Repo, base: str, head: str) -> JSON:
        count = _git(repo.path, "rev-list", "--count", f"{base}..{head}", check=False).stdout.strip()
        numstat = _git(repo.path, "diff", "--numstat", f"{base}...{head}", check=False).stdout.splitlines()
        rows = [line.split("\t", 2) for line in numstat if line.count("\t") >= 2]
        return {
            "commits": int(count) if count.isdigit() else 0,
            "additions": sum(int(row[0]) for row in rows if row[0].isdigit()),
            "deletions": sum(int(row[1]) for row in rows if row[1].isdigit()),
            "changed_files": len(rows),
        }

    # ---------------------------------------------------------------- lookups

    def _repo(self, match: re.Match[str]) -> _Repo:
        repo = self._repos.get(f"{match['owner']}/{match['name']}")
        if repo is None:
            raise _not_found()
        return repo

    def _repo_pull(self, match: re.Match[str]) -> tuple[_Repo, _Pull]:
        repo = self._repo(match)
        pull = repo.pulls.get(int(match["number"]))
        if pull is None:
            raise _not_found()
        self._refresh(repo, pull)
        return repo, pull

    def _refresh(self, repo: _Repo, pull: _Pull) -> None:
        """Read an open pull request's head and base live; close it if either branch is gone (as GitHub does)."""
        if pull.state != "open":
            return
        head, base = self._branch_sha(repo, pull.head_ref), self._branch_sha(repo, pull.base_ref)
        if head is None or base is None:
            pull.state, pull.closed_at = "closed", _now()
            pull.updated_at = pull.closed_at
            return
        pull.head_sha, pull.base_sha = head, base

    def _find_node(self, node_id: object) -> tuple[_Repo, _Pull] | None:
        for repo in self._repos.values():
            for pull in repo.pulls.values():
                if pull.node_id == node_id:
                    self._refresh(repo, pull)
                    return repo, pull
        return None

    # ---------------------------------------------------------------- JSON shapes

    def _user_json(self, login: str) -> JSON:
        user = self._users.get(login)
        if user is None:
            kind, user_id = "Organization", self._owner_ids.setdefault(login, next(self._ids))
        else:
            kind, user_id = user.kind, user.id
        return {
            "login": login,
            "id": user_id,
            "node_id": f"U_kgDO{user_id}",
            "type": kind,
            "site_admin": False,
            "url": f"{self.base_url}/users/{login}",
            "html_url": f"{self.web_url}/{login}",
            "avatar_url": f"{self.web_url}/avatars/{login}",
        }

    def _repo_json(self, repo: _Repo) -> JSON:
        api = self._api_repo_url(repo)
        return {
            "id": repo.id,
            "node_id": f"R_kgDO{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(repo.owner),
            "private": False,
            "visibility": "public",
            "fork": False,
            "archived": False,
            "disabled": False,
            "description": None,
            "default_branch": repo.default_branch,
            "url": api,
            "html_url": self._web_repo_url(repo),
            "clone_url": self.git_url(repo.full_name),
            "git_url": self.git_url(repo.full_name),
            "pulls_url": f"{api}/pulls{{/number}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            "allow_merge_commit": True,
            "allow_squash_merge": True,
            "allow_rebase_merge": True,
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
        }

    def _pull_urls(self, repo: _Repo, pull: _Pull) -> JSON:
        api, web = self._api_repo_url(repo), self._web_repo_url(repo)
        url = f"{api}/pulls/{pull.number}"
        urls = {
            "url": url,
            "html_url": f"{web}/pull/{pull.number}",
            "diff_url": f"{web}/pull/{pull.number}.diff",
            "patch_url": f"{web}/pull/{pull.number}.patch",
            "issue_url": f"{api}/issues/{pull.number}",
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
        }
        links = {
            "self": urls["url"],
            "html": urls["html_url"],
            "issue": urls["issue_url"],
            "comments": urls["comments_url"],
            "review_comments": urls["review_comments_url"],
            "review_comment": urls["review_comment_url"],
            "commits": urls["commits_url"],
            "statuses": urls["statuses_url"],
        }
        return {**urls, "_links": {rel: {"href": href} for rel, href in links.items()}}

    def _pull_part(self, repo: _Repo, ref: str, sha: str) -> JSON:
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self._user_json(repo.owner),
            "repo": self._repo_json(repo),
        }

    def _mergeable(self, repo: _Repo, pull: _Pull) -> tuple[bool | None, str]:
        if pull.state != "open":
            return None, "unknown"  # what GitHub says for closed and merged pull requests
        clean = self._merge_tree(repo, pull.base_sha, pull.head_sha) is not None
        if pull.draft:
            return clean, "draft"
        return clean, "clean" if clean else "dirty"

    def _pull_json(self, repo: _Repo, pull: _Pull) -> JSON:
        self._refresh(repo, pull)
        mergeable, mergeable_state = self._mergeable(repo, pull)
        return {
            **self._pull_urls(repo, pull),
            "id": pull.id,
            "node_id": pull.node_id,
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "body": pull.body,
            "user": self._user_json(pull.user),
            "labels": [],
            "milestone": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "head": self._pull_part(repo, pull.head_ref, pull.head_sha),
            "base": self._pull_part(repo, pull.base_ref, pull.base_sha),
            "author_association": "OWNER" if pull.user == repo.owner else "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pull.draft,
            "merged": pull.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": mergeable_state,
            "merged_by": None if pull.merged_by is None else self._user_json(pull.merged_by),
            "comments": sum(1 for comment in repo.comments if comment.number == pull.number),
            "review_comments": 0,
            "maintainer_can_modify": False,
            **self._diff_stats(repo, pull.base_sha, pull.head_sha),
        }

    def _issue_json(self, repo: _Repo, pull: _Pull) -> JSON:
        urls = self._pull_urls(repo, pull)
        return {
            "id": pull.id + 500_000,
            "node_id": f"I_kwDO{pull.id}",
            "number": pull.number,
            "title": pull.title,
            "body": pull.body,
            "state": pull.state,
            "user": self._user_json(pull.user),
            "labels": [],
            "assignees": [],
            "comments": sum(1 for comment in repo.comments if comment.number == pull.number),
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "url": urls["issue_url"],
            "html_url": urls["html_url"],
            "comments_url": urls["comments_url"],
            "repository_url": self._api_repo_url(repo),
            "pull_request": {key: urls[key] for key in ("url", "html_url", "diff_url", "patch_url")},
        }

    def _review_json(self, repo: _Repo, pull: _Pull, review: _Review) -> JSON:
        pull_url = f"{self._api_repo_url(repo)}/pulls/{pull.number}"
        html_url = f"{self._web_repo_url(repo)}/pull/{pull.number}#pullrequestreview-{review.id}"
        return {
            "id": review.id,
            "node_id": f"PRR_kwDO{review.id}",
            "user": self._user_json(review.user),
            "body": review.body,
            "state": review.state,
            "commit_id": review.commit_id,
            "submitted_at": review.submitted_at,
            "author_association": "OWNER" if review.user == repo.owner else "CONTRIBUTOR",
            "url": f"{pull_url}/reviews/{review.id}",
            "html_url": html_url,
            "pull_request_url": pull_url,
            "_links": {"html": {"href": html_url}, "pull_request": {"href": pull_url}},
        }

    def _comment_json(self, repo: _Repo, comment: _Comment) -> JSON:
        api = self._api_repo_url(repo)
        return {
            "id": comment.id,
            "node_id": f"IC_kwDO{comment.id}",
            "body": comment.body,
            "user": self._user_json(comment.user),
            "created_at": comment.created_at,
            "updated_at": comment.created_at,
            "author_association": "OWNER" if comment.user == repo.owner else "CONTRIBUTOR",
            "url": f"{api}/issues/comments/{comment.id}",
            "html_url": f"{self._web_repo_url(repo)}/pull/{comment.number}#issuecomment-{comment.id}",
            "issue_url": f"{api}/issues/{comment.number}",
        }

    def _commit_json(self, repo: _Repo, sha: str) -> JSON:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        fields = _git(repo.path, "show", "--no-patch", f"--format={fmt}", sha).stdout.split("\0")
        sha, tree, parents, message = fields[0], fields[1], fields[2].split(), fields[9].rstrip("\n")
        api, web = self._api_repo_url(repo), self._web_repo_url(repo)
        return {
            "sha": sha,
            "node_id": f"C_kwDO{sha[:12]}",
            "url": f"{api}/commits/{sha}",
            "html_url": f"{web}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{sha}",
                "message": message,
                "tree": {"sha": tree, "url": f"{api}/git/trees/{tree}"},
                "author": {"name": fields[3], "email": fields[4], "date": _iso_utc(fields[5])},
                "committer": {"name": fields[6], "email": fields[7], "date": _iso_utc(fields[8])},
                "comment_count": 0,
            },
            "author": None,
            "committer": None,
            "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{web}/commit/{p}"} for p in parents],
        }

    def _diff_files(self, repo: _Repo, base: str, head: str) -> list[JSON]:
        """The `files` GitHub lists for a commit (against its first parent) or a pull request."""
        raw = _git(repo.path, "diff", "--raw", "-M", "-z", base, head).stdout.split("\0")
        counts = _parse_numstat(_git(repo.path, "diff", "--numstat", "-M", "-z", base, head).stdout.split("\0"))
        api, web = self._api_repo_url(repo), self._web_repo_url(repo)
        files = []
        for status, blob, path, previous in _parse_raw_diff(raw):
            added, deleted = counts.get(path, (0, 0))
            entry: JSON = {
                "sha": blob,
                "filename": path,
                "status": _FILE_STATUSES.get(status, "modified"),
                "additions": added,
                "deletions": deleted,
                "changes": added + deleted,
                "blob_url": f"{web}/blob/{head}/{urllib.parse.quote(path)}",
                "raw_url": f"{web}/raw/{head}/{urllib.parse.quote(path)}",
                "contents_url": f"{api}/contents/{urllib.parse.quote(path)}?ref={head}",
            }
            if previous is not None:
                entry["previous_filename"] = previous
            files.append(entry)
        return files

    def _full_commit_json(self, repo: _Repo, sha: str) -> JSON:
        """A commit as `GET /commits/{ref}` returns it: with its files and stats."""
        answer = self._commit_json(repo, sha)
        parents = answer["parents"]
        files = self._diff_files(repo, parents[0]["sha"] if parents else _EMPTY_TREE, answer["sha"])
        additions, deletions = sum(f["additions"] for f in files), sum(f["deletions"] for f in files)
        return {
            **answer,
            "stats": {"total": additions + deletions, "additions": additions, "deletions": deletions},
            "files": files,
        }

    def _status_json(self, repo: _Repo, status: _Status) -> JSON:
        answer: JSON = {
            "id": status.id,
            "node_id": f"SC_kwDO{status.id}",
            "url": f"{self._api_repo_url(repo)}/statuses/{status.sha}",
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": status.created_at,
            "updated_at": status.created_at,
        }
        if status.creator is not None:
            answer["creator"] = self._user_json(status.creator)
        return answer

    def _check_run_json(self, repo: _Repo, run: _CheckRun) -> JSON:
        api_url = f"{self._api_repo_url(repo)}/check-runs/{run.id}"
        html_url = f"{self._web_repo_url(repo)}/runs/{run.id}"
        return {
            "id": run.id,
            "node_id": f"CR_kwDO{run.id}",
            "name": run.name,
            "head_sha": run.head_sha,
            "external_id": run.external_id,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "url": api_url,
            "html_url": html_url,
            "details_url": run.details_url or html_url,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{api_url}/annotations",
            },
            "pull_requests": [],
        }

    # ---------------------------------------------------------------- users and repositories

    def _get_authenticated_user(self, call: _Call, match: re.Match[str]) -> _Reply:
        return _Reply(200, {**self._user_json(call.login), "name": call.login, "email": None})

    def _get_user(self, call: _Call, match: re.Match[str]) -> _Reply:
        login = match["login"]
        if login not in self._users and all(repo.owner != login for repo in self._repos.values()):
            raise _not_found()
        return _Reply(200, self._user_json(login))

    def _get_repo(self, call: _Call, match: re.Match[str]) -> _Reply:
        return _Reply(200, self._repo_json(self._repo(match)))

    def _get_branch(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        sha = self._branch_sha(repo, match["branch"])
        if sha is None:
            raise _not_found("Branch not found")
        branch_api = f"{self._api_repo_url(repo)}/branches/{match['branch']}"
        branch_web = f"{self._web_repo_url(repo)}/tree/{match['branch']}"
        return _Reply(
            200,
            {
                "name": match["branch"],
                "commit": self._full_commit_json(repo, sha),
                "protected": False,
                "url": branch_api,
                "html_url": branch_web,
                "_links": {"self": branch_api, "html": branch_web},
            },
        )

    def _get_git_ref(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        sha = self._rev(repo, f"refs/{match['ref']}")
        if sha is None:
            raise _not_found()
        api = self._api_repo_url(repo)
        obj = {"sha": sha, "type": "commit", "url": f"{api}/git/commits/{sha}"}
        ref = f"refs/{match['ref']}"
        return _Reply(200, {"ref": ref, "node_id": f"REF_{sha[:12]}", "url": f"{api}/git/{ref}", "object": obj})

    def _delete_git_ref(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        ref = f"refs/{match['ref']}"
        if self._rev(repo, ref) is None:
            raise _unprocessable("Reference does not exist")
        _git(repo.path, "update-ref", "-d", ref)
        return _Reply(204)

    # ---------------------------------------------------------------- pull requests

    def _list_pulls(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        state = call.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _validation(f"state must be open, closed or all, not {state!r}", field_name="state")
        for pull in repo.pulls.values():
            self._refresh(repo, pull)
        pulls = [pull for pull in repo.pulls.values() if state in ("all", pull.state)]
        head = call.query.get("head", "")
        if ":" in head:  # GitHub ignores a head filter without the owner: prefix
            owner, _, branch = head.partition(":")
            pulls = [pull for pull in pulls if owner == repo.owner and pull.head_ref == branch]
        if "base" in call.query:
            pulls = [pull for pull in pulls if pull.base_ref == call.query["base"]]
        key = "updated_at" if call.query.get("sort") == "updated" else "created_at"
        pulls.sort(key=lambda pull: (getattr(pull, key), pull.number), reverse=call.query.get("direction") != "asc")
        page, headers = self._paginate(call, pulls)
        return _Reply(200, [self._pull_json(repo, pull) for pull in page], headers)

    def _head_branch(self, repo: _Repo, head: str) -> str:
        owner, sep, branch = head.rpartition(":")
        if sep and owner != repo.owner:
            raise _validation(f"head {head!r} is not a branch of {repo.full_name}", field_name="head", code="invalid")
        return branch

    def _create_pull(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        data = call.json_body()
        head_ref = self._head_branch(repo, _str_field(data, "head", required=True) or "")
        base_ref = _str_field(data, "base", required=True) or ""
        title = _str_field(data, "title", required=True) or ""
        head_sha, base_sha = self._branch_sha(repo, head_ref), self._branch_sha(repo, base_ref)
        if head_sha is None:
            raise _validation(f"head branch {head_ref!r} does not exist", field_name="head", code="invalid")
        if base_sha is None:
            raise _validation(f"base branch {base_ref!r} does not exist", field_name="base", code="invalid")
        for other in repo.pulls.values():
            self._refresh(repo, other)
            if other.state == "open" and (other.head_ref, other.base_ref) == (head_ref, base_ref):
                raise _validation(f"A pull request already exists for {repo.owner}:{head_ref}.")
        if self._is_ancestor(repo, head_sha, base_sha):
            raise _validation(f"No commits between {base_ref} and {head_ref}")
        now = _now()
        pull = _Pull(
            id=next(self._ids),
            number=repo.next_number,
            title=title,
            body=_str_field(data, "body"),
            user=call.login,
            head_ref=head_ref,
            base_ref=base_ref,
            head_sha=head_sha,
            base_sha=base_sha,
            draft=bool(data.get("draft", False)),
            created_at=now,
            updated_at=now,
        )
        repo.next_number += 1
        repo.pulls[pull.number] = pull
        answer = self._pull_json(repo, pull)
        return _Reply(201, answer, {"Location": answer["url"]})

    def _get_pull(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        return _Reply(200, self._pull_json(repo, pull))

    def _update_pull(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        data = call.json_body()
        title, body, base = _str_field(data, "title"), _str_field(data, "body"), _str_field(data, "base")
        state = _str_field(data, "state")
        if base is not None and pull.state == "open":
            if self._branch_sha(repo, base) is None:
                raise _validation(f"base branch {base!r} does not exist", field_name="base", code="invalid")
            pull.base_ref = base
        if state is not None and state != pull.state:
            self._change_state(repo, pull, state)
        pull.title = pull.title if title is None else title
        pull.body = pull.body if body is None else body
        pull.updated_at = _now()
        return _Reply(200, self._pull_json(repo, pull))

    def _change_state(self, repo: _Repo, pull: _Pull, state: str) -> None:
        if state == "closed":
            pull.state, pull.closed_at = "closed", _now()
            return
        if state != "open":
            raise _validation(f"state must be open or closed, not {state!r}", field_name="state", code="invalid")
        if pull.merged:
            raise _unprocessable("Cannot reopen a merged pull request")
        if self._branch_sha(repo, pull.head_ref) is None or self._branch_sha(repo, pull.base_ref) is None:
            raise _unprocessable("Cannot reopen a pull request whose head or base branch is gone")
        pair = (pull.head_ref, pull.base_ref)
        if any(other.state == "open" and (other.head_ref, other.base_ref) == pair for other in repo.pulls.values()):
            raise _validation(f"A pull request already exists for {repo.owner}:{pull.head_ref}.")
        pull.state, pull.closed_at = "open", None
        self._refresh(repo, pull)

    def _list_pull_commits(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        shas = _git(repo.path, "rev-list", "--reverse", f"{pull.base_sha}..{pull.head_sha}").stdout.split()
        page, headers = self._paginate(call, shas)
        return _Reply(200, [self._commit_json(repo, sha) for sha in page], headers)

    def _list_pull_files(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        fork_point = _git(repo.path, "merge-base", pull.base_sha, pull.head_sha, check=False).stdout.strip()
        return self._page_reply(call, self._diff_files(repo, fork_point or _EMPTY_TREE, pull.head_sha))

    def _get_issue(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        return _Reply(200, self._issue_json(repo, pull))

    # ---------------------------------------------------------------- reviews and comments

    def _list_reviews(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        return self._page_reply(call, [self._review_json(repo, pull, review) for review in pull.reviews])

    def _get_review(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        for review in pull.reviews:
            if review.id == int(match["id"]):
                return _Reply(200, self._review_json(repo, pull, review))
        raise _not_found()

    def _create_review(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        data = call.json_body()
        event, body = _str_field(data, "event"), _str_field(data, "body") or ""
        if pull.state != "open":
            raise _unprocessable("Can not review a closed pull request")
        if event is not None and event not in _REVIEW_STATES:
            raise _validation(f"event must be one of {sorted(_REVIEW_STATES)}", field_name="event", code="invalid")
        if event in _OWN_REVIEW_ERRORS and call.login == pull.user:
            raise _unprocessable(_OWN_REVIEW_ERRORS[event])
        if data.get("comments"):
            raise _unprocessable("inline review comments are unsupported by the fake")
        if event in ("REQUEST_CHANGES", "COMMENT") and not body:
            raise _unprocessable(f"Body is required when using {event}")
        commit_id = self._rev(repo, _str_field(data, "commit_id") or pull.head_sha)
        if commit_id is None:
            raise _validation("commit_id is not a commit of this repository", field_name="commit_id")
        review = _Review(
            id=next(self._ids),
            user=call.login,
            body=body,
            state=_REVIEW_STATES.get(event or "", "PENDING"),
            commit_id=commit_id,
            submitted_at=None if event is None else _now(),
        )
        pull.reviews.append(review)
        return _Reply(200, self._review_json(repo, pull, review))

    def _list_comments(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        comments = [self._comment_json(repo, c) for c in repo.comments if c.number == pull.number]
        return self._page_reply(call, comments)

    def _create_comment(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        body = _str_field(call.json_body(), "body", required=True) or ""
        comment = _Comment(id=next(self._ids), number=pull.number, user=call.login, body=body, created_at=_now())
        repo.comments.append(comment)
        answer = self._comment_json(repo, comment)
        return _Reply(201, answer, {"Location": answer["url"]})

    def _get_comment(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        for comment in repo.comments:
            if comment.id == int(match["id"]):
                return _Reply(200, self._comment_json(repo, comment))
        raise _not_found()

    # ---------------------------------------------------------------- merging

    def _get_merged(self, call: _Call, match: re.Match[str]) -> _Reply:
        _, pull = self._repo_pull(match)
        return _Reply(204) if pull.merged else _Reply(404, {"message": "Not Found"})

    def _merge_pull(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo, pull = self._repo_pull(match)
        data = call.json_body()
        method = _str_field(data, "merge_method") or "merge"
        if method not in _MERGE_METHODS:
            raise _validation(f"merge_method must be one of {_MERGE_METHODS}", field_name="merge_method")
        if pull.state != "open":
            raise _ApiError(405, "Pull Request is not mergeable")
        if pull.draft:
            raise _ApiError(405, "Pull request is in draft state")
        expected = _str_field(data, "sha")
        if expected is not None and expected != pull.head_sha:
            raise _ApiError(409, "Head branch was modified. Review and try the merge again.")
        new_sha = self._merge_commit(repo, pull, method, data, call.login)
        moved = _git(repo.path, "update-ref", f"refs/heads/{pull.base_ref}", new_sha, pull.base_sha, check=False)
        if moved.returncode != 0:
            raise _ApiError(409, "Base branch was modified. Review and try the merge again.")
        now = _now()
        pull.state, pull.merged, pull.merged_by, pull.merge_commit_sha = "closed", True, call.login, new_sha
        pull.closed_at = pull.merged_at = pull.updated_at = now
        return _Reply(200, {"sha": new_sha, "merged": True, "message": "Pull Request successfully merged"})

    def _merge_commit(self, repo: _Repo, pull: _Pull, method: str, data: JSON, login: str) -> str:
        """Make the commit the base branch will point at after merging `pull`; 405 if it does not merge cleanly."""
        if method == "rebase":
            rebased = self._rebase(repo, pull)
            if rebased is None:
                raise _ApiError(405, "Pull Request is not mergeable")
            return rebased
        tree = self._merge_tree(repo, pull.base_sha, pull.head_sha)
        if tree is None:
            raise _ApiError(405, "Pull Request is not mergeable")
        if method == "merge":
            default_title = f"Merge pull request #{pull.number} from {repo.owner}/{pull.head_ref}"
            default_message, parents, author = pull.title, [pull.base_sha, pull.head_sha], login
        else:
            default_title = f"{pull.title} (#{pull.number})"
            subjects = _git(repo.path, "log", "--reverse", "--format=* %s", f"{pull.base_sha}..{pull.head_sha}")
            default_message, parents, author = subjects.stdout.strip(), [pull.base_sha], pull.user
        title = _str_field(data, "commit_title") or default_title
        message = _str_field(data, "commit_message")
        message = default_message if message is None else message
        identity = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@users.noreply.github.com"}
        args = [arg for parent in parents for arg in ("-p", parent)]
        text = f"{title}\n\n{message}\n" if message else f"{title}\n"
        return _git(repo.path, "commit-tree", tree, *args, stdin=text, env=identity).stdout.strip()

    def _rebase(self, repo: _Repo, pull: _Pull) -> str | None:
        """Replay the pull request's commits onto its base in a throwaway worktree; None if that conflicts."""
        worktree = self.root / ".worktrees" / f"{repo.owner}-{repo.name}-{pull.number}-{next(self._ids)}"
        worktree.parent.mkdir(parents=True, exist_ok=True)
        _git(repo.path, "worktree", "add", "--quiet", "--detach", str(worktree), pull.head_sha)
        try:
            if _git(worktree, "rebase", "--quiet", "--force-rebase", pull.base_sha, check=False).returncode != 0:
                _git(worktree, "rebase", "--abort", check=False)
                return None
            head = _git(worktree, "rev-parse", "HEAD").stdout.strip()
            return pull.base_sha if self._is_ancestor(repo, head, pull.base_sha) else head
        finally:
            _git(repo.path, "worktree", "remove", "--force", str(worktree), check=False)
            _git(repo.path, "worktree", "prune", check=False)

    # ---------------------------------------------------------------- commits, statuses, check runs

    def _ref_or_422(self, repo: _Repo, ref: str) -> str:
        sha = self._rev(repo, ref)
        if sha is None:
            raise _unprocessable(f"No commit found for SHA: {ref}")
        return sha

    def _get_commit(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        return _Reply(200, self._full_commit_json(repo, self._ref_or_422(repo, match["ref"])))

    def _add_status(
        self,
        repo: _Repo,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        target_url: str | None,
        creator: str | None,
    ) -> _Status:
        status = _Status(
            id=next(self._ids),
            sha=sha,
            state=state,
            context=context,
            description=description,
            target_url=target_url,
            creator=creator,
            created_at=_now(),
        )
        repo.statuses.append(status)
        return status

    def _create_status(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        sha = self._ref_or_422(repo, match["ref"])
        data = call.json_body()
        state = _str_field(data, "state", required=True)
        if state not in _STATUS_STATES:
            raise _validation(f"state must be one of {_STATUS_STATES}", field_name="state", code="invalid")
        context = _str_field(data, "context") or "default"
        description, target_url = _str_field(data, "description"), _str_field(data, "target_url")
        status = self._add_status(repo, sha, state, context, description, target_url, call.login)
        answer = self._status_json(repo, status)
        return _Reply(201, answer, {"Location": answer["url"]})

    def _list_statuses(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        sha = self._ref_or_422(repo, match["ref"])
        statuses = [self._status_json(repo, s) for s in reversed(repo.statuses) if s.sha == sha]
        return self._page_reply(call, statuses)

    def _get_combined_status(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        sha = self._ref_or_422(repo, match["ref"])
        latest: dict[str, _Status] = {}
        for status in repo.statuses:
            if status.sha == sha:
                latest[status.context] = status
        states = {status.state for status in latest.values()}
        if states & {"failure", "error"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        page, headers = self._paginate(call, sorted(latest.values(), key=lambda s: s.id, reverse=True))
        commit_url = f"{self._api_repo_url(repo)}/commits/{sha}"
        answer = {
            "state": state,
            "sha": sha,
            "total_count": len(latest),
            "statuses": [self._status_json(repo, status) for status in page],
            "repository": self._repo_json(repo),
            "commit_url": commit_url,
            "url": f"{commit_url}/status",
        }
        return _Reply(200, answer, headers)

    def _apply_check_run(self, run: _CheckRun, data: JSON) -> None:
        status, conclusion = _str_field(data, "status"), _str_field(data, "conclusion")
        if status is not None and status not in _CHECK_STATUSES:
            raise _validation(f"status must be one of {_CHECK_STATUSES}", field_name="status", code="invalid")
        if conclusion is not None and conclusion not in _CHECK_CONCLUSIONS:
            raise _validation(f"conclusion must be one of {_CHECK_CONCLUSIONS}", field_name="conclusion")
        if conclusion is not None:
            status = "completed"
        if status == "completed" and conclusion is None and run.conclusion is None:
            raise _validation("conclusion is required when status is completed", field_name="conclusion")
        run.status = status or run.status
        run.conclusion = conclusion or run.conclusion
        if run.status == "completed" and run.completed_at is None:
            run.completed_at = _str_field(data, "completed_at") or _now()
        run.details_url = _str_field(data, "details_url") or run.details_url
        run.external_id = _str_field(data, "external_id") or run.external_id
        output = data.get("output")
        if isinstance(output, dict):
            run.title = _str_field(output, "title") or run.title
            run.summary = _str_field(output, "summary") or run.summary

    def _create_check_run(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        data = call.json_body()
        name = _str_field(data, "name", required=True) or ""
        head_sha = self._ref_or_422(repo, _str_field(data, "head_sha", required=True) or "")
        run = _CheckRun(
            id=next(self._ids),
            head_sha=head_sha,
            name=name,
            status="queued",
            conclusion=None,
            started_at=_str_field(data, "started_at") or _now(),
        )
        self._apply_check_run(run, data)
        repo.check_runs.append(run)
        return _Reply(201, self._check_run_json(repo, run))

    def _check_run(self, repo: _Repo, match: re.Match[str]) -> _CheckRun:
        for run in repo.check_runs:
            if run.id == int(match["id"]):
                return run
        raise _not_found()

    def _get_check_run(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        return _Reply(200, self._check_run_json(repo, self._check_run(repo, match)))

    def _update_check_run(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        run = self._check_run(repo, match)
        self._apply_check_run(run, call.json_body())
        run.name = _str_field(call.json_body(), "name") or run.name
        return _Reply(200, self._check_run_json(repo, run))

    def _list_check_runs(self, call: _Call, match: re.Match[str]) -> _Reply:
        repo = self._repo(match)
        sha = self._ref_or_422(repo, match["ref"])
        runs = [run for run in reversed(repo.check_runs) if run.head_sha == sha]
        if call.query.get("filter", "latest") == "latest":
            newest: dict[str, _CheckRun] = {}
            for run in runs:
                newest.setdefault(run.name, run)
            runs = list(newest.values())
        if "check_name" in call.query:
            runs = [run for run in runs if run.name == call.query["check_name"]]
        if "status" in call.query:
            runs = [run for run in runs if run.status == call.query["status"]]
        page, headers = self._paginate(call, runs)
        answer = {"total_count": len(runs), "check_runs": [self._check_run_json(repo, run) for run in page]}
        return _Reply(200, answer, headers)

    # ---------------------------------------------------------------- GraphQL

    def _graphql(self, method: str, login: str, payload: Any) -> _Reply:
        if method != "POST":
            raise _not_found()
        query = payload.get("query") if isinstance(payload, dict) else None
        variables = payload.get("variables") if isinstance(payload, dict) else None
        named = re.match(r"\s*mutation\b[^{]*\{\s*(\w+)\s*\(", query or "")
        mutation = named.group(1) if named else None
        if mutation not in ("markPullRequestReadyForReview", "convertPullRequestToDraft"):
            return _Reply(200, {"errors": [{"message": "unsupported by the fake"}]})
        mutation_input = variables.get("input") if isinstance(variables, dict) else None
        if not isinstance(mutation_input, dict):
            return _Reply(200, {"errors": [{"message": f"{mutation} needs an input variable"}]})
        with self._lock:
            found = self._find_node(mutation_input.get("pullRequestId"))
            if found is None:
                message = f"Could not resolve to a node with the global id of '{mutation_input.get('pullRequestId')}'."
                return _Reply(200, {"errors": [{"type": "NOT_FOUND", "path": [mutation], "message": message}]})
            _, pull = found
            pull.draft = mutation == "convertPullRequestToDraft"
            pull.updated_at = _now()
        result = {"clientMutationId": mutation_input.get("clientMutationId"), "pullRequest": {"isDraft": pull.draft}}
        return _Reply(200, {"data": {mutation: result}})

    # ---------------------------------------------------------------- git smart HTTP

    def _serve_git(
        self, method: str, match: re.Match[str], query: str, headers: dict[str, str], body: bytes
    ) -> tuple[_Reply, str | None]:
        login = self._login_for(headers.get("authorization"))
        if login is None:
            challenge = {"WWW-Authenticate": 'Basic realm="fake-github"', "Content-Type": "text/plain"}
            return _Reply(401, headers=challenge, raw=b"Authentication required\n"), None
        with self._lock:
            repo = self._repos.get(f"{match['owner']}/{match['name']}")
        if repo is None:
            return _Reply(404, headers={"Content-Type": "text/plain"}, raw=b"Repository not found.\n"), login
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{repo.owner}/{repo.name}.git/{match['rest']}",
            "REQUEST_METHOD": method,
            "QUERY_STRING": query,
            "CONTENT_TYPE": headers.get("content-type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": login,
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        if "content-encoding" in headers:
            env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
        if "git-protocol" in headers:
            env["HTTP_GIT_PROTOCOL"] = env["GIT_PROTOCOL"] = headers["git-protocol"]
        proc = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=_git_env(env), timeout=_GIT_TIMEOUT
        )
        status, cgi_headers, out = _parse_cgi(proc.stdout)
        return _Reply(status, headers=cgi_headers, raw=out), login


class _Server(ThreadingHTTPServer):
    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.fake = fake


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked request bodies and Expect: 100-continue
    server_version = "FakeGitHub/1.0"
    timeout = 60  # an idle kept-alive connection is dropped after this long

    @property
    def fake(self) -> FakeGitHub:
        assert isinstance(self.server, _Server)
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(_Reply(400, {"message": "Problems parsing the request body"}))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.fake._handle(self.command, self.path, headers, body))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit():
            raise ValueError("bad Content-Length")
        return self.rfile.read(int(length))

    def _send(self, reply: _Reply) -> None:
        data = reply.encode()
        self.send_response(reply.status)
        headers = dict(reply.headers)
        if reply.raw is None and reply.payload is not None:
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    """A started FakeGitHub keeping its bare repositories under tmp_path; stopped at teardown."""
    with FakeGitHub(tmp_path / "fake-github") as fake:
        yield fake
