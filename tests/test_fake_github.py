"""The GitHub fake itself, driven over real HTTP by PyGithub and the git CLI."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from github import Auth, BadCredentialsException, Github, GithubException, UnknownObjectException

from tests.helpers.fake_github import FakeGitHub, fake_github  # noqa: F401
from tests.helpers.gitrepo import git, init_repo

REPO = "acme/widgets"
ALICE, ALICE_TOKEN = "alice", "tok-alice"
BOB, BOB_TOKEN = "shipway-bot[bot]", "tok-bot"


def run_git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """git with no user config, no credential helpers and no prompts, as a client of the fake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_ASKPASS"))}
    env |= {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.invalid",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.invalid",
    }
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=check, timeout=30)


def auth_header(token: str) -> str:
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return f"http.extraHeader=Authorization: Basic {basic}"


def commit_file(repo: Path, name: str, text: str, message: str) -> str:
    (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """main: app.txt changed twice; `feature` adds a file (merges cleanly); `clash` rewrites app.txt (conflicts)."""
    repo = init_repo(tmp_path / "source")
    commit_file(repo, "app.txt", "one\n", "add app")
    git(repo, "branch", "feature")
    git(repo, "branch", "clash")
    commit_file(repo, "app.txt", "two\n", "main changes app")
    git(repo, "checkout", "-q", "feature")
    commit_file(repo, "feature.txt", "new\n", "add feature")
    git(repo, "checkout", "-q", "clash")
    commit_file(repo, "app.txt", "clash\n", "clash changes app")
    git(repo, "checkout", "-q", "main")
    return repo


@pytest.fixture
def hub(fake_github: FakeGitHub, source: Path) -> FakeGitHub:  # noqa: F811  (the imported fixture)
    fake_github.add_user(ALICE, ALICE_TOKEN)
    fake_github.add_user(BOB, BOB_TOKEN, kind="Bot")
    fake_github.add_repo(REPO, source=source)
    return fake_github


@contextmanager
def client(fake: FakeGitHub, token: str, per_page: int = 30) -> Iterator[Github]:
    gh = Github(
        base_url=fake.base_url,
        auth=Auth.Token(token),
        retry=None,
        seconds_between_requests=0,
        seconds_between_writes=0,
        per_page=per_page,
    )
    try:
        yield gh
    finally:
        gh.close()


def bare_rev(fake: FakeGitHub, ref: str) -> str:
    return git(fake.bare_path(REPO), "rev-parse", ref)


def raw_request(fake: FakeGitHub, method: str, path: str, body: str | None = None, token: str = ALICE_TOKEN) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", int(fake.web_url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Authorization": f"token {token}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def test_authenticated_user_and_bad_credentials(hub: FakeGitHub) -> None:
    with client(hub, BOB_TOKEN) as gh:
        me = gh.get_user()
        assert (me.login, me.type) == (BOB, "Bot")
    with client(hub, "not-a-token") as gh, pytest.raises(BadCredentialsException):
        _ = gh.get_user().login
    assert [(r.path, r.login, r.status) for r in hub.requests] == [
        ("/api/v3/user", BOB, 200),
        ("/api/v3/user", None, 401),
    ]


def test_repository_shape_and_unknown_repository(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        assert (repo.full_name, repo.default_branch, repo.owner.login) == (REPO, "main", "acme")
        assert repo.clone_url == hub.git_url(REPO)
        assert repo.html_url == f"{hub.web_url}/{REPO}"
        with pytest.raises(UnknownObjectException):
            gh.get_repo("acme/nope")


def test_git_push_and_clone_with_token(hub: FakeGitHub, source: Path, tmp_path: Path) -> None:
    git(source, "checkout", "-q", "-b", "topic")
    (source / "blob.bin").write_bytes(os.urandom(200_000))  # beyond the post buffer: a chunked request body
    git(source, "add", "blob.bin")
    sha = commit_file(source, "topic.txt", "topic\n", "topic work")
    push = ("-c", auth_header(ALICE_TOKEN), "-c", "http.postBuffer=65536", "push", "-q", hub.git_url(REPO), "topic")
    run_git(source, *push)
    assert bare_rev(hub, "refs/heads/topic") == sha
    assert any(r.path.endswith("/git-receive-pack") and r.login == ALICE for r in hub.requests)

    clone = tmp_path / "clone"
    run_git(tmp_path, "-c", auth_header(BOB_TOKEN), "clone", "-q", hub.git_url(REPO), str(clone))
    assert git(clone, "rev-parse", "origin/topic") == sha
    assert (clone / "app.txt").read_text() == "two\n"


def test_git_without_credentials_is_refused(hub: FakeGitHub, source: Path, tmp_path: Path) -> None:
    before = git(hub.bare_path(REPO), "for-each-ref")
    commit_file(source, "more.txt", "more\n", "more")
    push = run_git(source, "push", hub.git_url(REPO), "main", check=False)
    assert push.returncode != 0
    bad = run_git(source, "-c", auth_header("wrong"), "push", hub.git_url(REPO), "main", check=False)
    assert bad.returncode != 0
    clone = run_git(tmp_path, "clone", hub.git_url(REPO), str(tmp_path / "anon"), check=False)
    assert clone.returncode != 0
    assert git(hub.bare_path(REPO), "for-each-ref") == before
    assert {r.status for r in hub.requests} == {401}


def test_create_draft_pull_request_then_duplicate_and_filters(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        pr = repo.create_pull(title="Add feature", body="Why", base="main", head="feature", draft=True)
        assert (pr.number, pr.draft, pr.state, pr.user.login) == (1, True, "open", ALICE)
        assert pr.html_url == f"{hub.web_url}/{REPO}/pull/1"
        assert pr.head.sha == bare_rev(hub, "refs/heads/feature")
        assert (pr.base.ref, pr.base.sha, pr.head.label) == ("main", bare_rev(hub, "refs/heads/main"), "acme:feature")
        assert (pr.mergeable, pr.mergeable_state) == (True, "draft")

        with pytest.raises(GithubException) as duplicate:
            repo.create_pull(title="Again", body="", base="main", head="acme:feature")
        assert duplicate.value.status == 422
        assert "A pull request already exists for acme:feature." in json.dumps(duplicate.value.data)

        assert [p.number for p in repo.get_pulls(state="open", head="acme:feature")] == [1]
        assert [p.number for p in repo.get_pulls(state="open", head="acme:clash")] == []
        assert [p.number for p in repo.get_pulls(state="closed")] == []
        assert [p.number for p in repo.get_pulls(base="develop")] == []
    assert [p["number"] for p in hub.pulls(REPO)] == [1]


def test_create_pull_request_validation(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        for base, head in [("main", "no-such-branch"), ("no-such-base", "feature"), ("main", "main")]:
            with pytest.raises(GithubException) as exc:
                repo.create_pull(title="t", body="", base=base, head=head)
            assert exc.value.status == 422
            assert exc.value.data["message"] == "Validation Failed"
    assert hub.pulls(REPO) == []


def test_push_moves_open_pull_request_head(hub: FakeGitHub, source: Path) -> None:
    with client(hub, ALICE_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        first = repo.create_pull(title="Feature", body="", base="main", head="feature").head.sha
        git(source, "checkout", "-q", "feature")
        pushed = commit_file(source, "feature.txt", "newer\n", "more feature")
        run_git(source, "-c", auth_header(ALICE_TOKEN), "push", "-q", hub.git_url(REPO), "feature")
        again = repo.get_pull(1)
        assert (first != pushed, again.head.sha, again.commits) == (True, pushed, 2)


def test_ready_for_review_and_back_to_draft(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        pr = repo.create_pull(title="Feature", body="", base="main", head="feature", draft=True)
        pr.mark_ready_for_review()
        assert pr.draft is False
        assert repo.get_pull(1).draft is False
        pr.convert_to_draft()
        assert repo.get_pull(1).draft is True
        with pytest.raises(GithubException) as exc:
            pr.enable_automerge()
        assert "unsupported by the fake" in json.dumps(exc.value.data)
    assert any(r.path == "/api/graphql" and r.login == ALICE for r in hub.requests)


def test_reviews_by_others_and_not_by_the_author(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN) as author, client(hub, BOB_TOKEN) as reviewer:
        pr = author.get_repo(REPO).create_pull(title="Feature", body="", base="main", head="feature")
        head = pr.head.sha
        with pytest.raises(GithubException) as own:
            pr.create_review(body="lgtm", event="APPROVE")
        assert own.value.status == 422
        assert own.value.data["message"] == "Can not approve your own pull request"

        bobs_pr = reviewer.get_repo(REPO).get_pull(1)
        review = bobs_pr.create_review(commit=reviewer.get_repo(REPO).get_commit(head), body="ok", event="APPROVE")
        assert (review.state, review.commit_id, review.user.login) == ("APPROVED", head, BOB)
        bobs_pr.create_review(body="please fix", event="REQUEST_CHANGES")

        listed = [(r.user.login, r.state, r.commit_id) for r in pr.get_reviews()]
        assert listed == [(BOB, "APPROVED", head), (BOB, "CHANGES_REQUESTED", head)]

        pr.edit(state="closed")
        with pytest.raises(GithubException) as closed:
            bobs_pr.create_review(body="late", event="APPROVE")
        assert closed.value.status == 422


def test_issue_comments(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN) as gh:
        pr = gh.get_repo(REPO).create_pull(title="Feature", body="", base="main", head="feature")
        made = pr.create_issue_comment("first")
        pr.create_issue_comment("second")
        assert made.html_url.startswith(f"{hub.web_url}/{REPO}/pull/1#issuecomment-")
        assert [(c.body, c.user.login) for c in pr.get_issue_comments()] == [("first", ALICE), ("second", ALICE)]
        assert gh.get_repo(REPO).get_pull(1).comments == 2


def test_combined_status_and_check_runs(hub: FakeGitHub) -> None:
    sha = bare_rev(hub, "refs/heads/feature")
    with client(hub, BOB_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        commit = repo.get_commit(sha)
        assert (commit.get_combined_status().state, commit.get_combined_status().total_count) == ("pending", 0)
        hub.set_status(REPO, sha, "success", context="ci/tests")
        assert commit.get_combined_status().state == "success"
        commit.create_status("failure", description="lint broke", context="ci/lint")
        combined = commit.get_combined_status()
        assert (combined.state, combined.total_count, combined.sha) == ("failure", 2, sha)
        hub.set_status(REPO, sha, "success", context="ci/lint")
        assert commit.get_combined_status().state == "success"

        hub.add_check_run(REPO, sha, "build")
        hub.add_check_run(REPO, sha, "docs", status="queued")
        repo.create_check_run(name="e2e", head_sha=sha, status="in_progress")
        runs = {run.name: (run.status, run.conclusion) for run in commit.get_check_runs()}
        assert runs == {"build": ("completed", "success"), "docs": ("queued", None), "e2e": ("in_progress", None)}
        assert commit.commit.message == "add feature"
        assert [p.sha for p in commit.parents] == [git(hub.bare_path(REPO), "rev-parse", f"{sha}~1")]


def test_merge_refusals_leave_the_repository_alone(hub: FakeGitHub) -> None:
    refs = git(hub.bare_path(REPO), "for-each-ref")
    with client(hub, ALICE_TOKEN) as gh:
        repo = gh.get_repo(REPO)
        draft = repo.create_pull(title="Feature", body="", base="main", head="feature", draft=True)
        with pytest.raises(GithubException) as exc:
            draft.merge()
        assert (exc.value.status, exc.value.data["message"]) == (405, "Pull request is in draft state")

        clash = repo.create_pull(title="Clash", body="", base="main", head="clash")
        assert (clash.mergeable, clash.mergeable_state) == (False, "dirty")
        with pytest.raises(GithubException) as exc:
            clash.merge(sha=bare_rev(hub, "refs/heads/main"))
        assert (exc.value.status, exc.value.data["message"]) == (
            409,
            "Head branch was modified. Review and try the merge again.",
        )
        with pytest.raises(GithubException) as exc:
            clash.merge()
        assert (exc.value.status, exc.value.data["message"]) == (405, "Pull Request is not mergeable")
        assert repo.get_pull(2).merged is False
    assert git(hub.bare_path(REPO), "for-each-ref") == refs


def test_merge_makes_a_real_merge_commit(hub: FakeGitHub) -> None:
    old_main, head = bare_rev(hub, "refs/heads/main"), bare_rev(hub, "refs/heads/feature")
    with client(hub, ALICE_TOKEN) as gh:
        pr = gh.get_repo(REPO).create_pull(title="Feature", body="", base="main", head="feature")
        assert (pr.mergeable, pr.mergeable_state) == (True, "clean")
        status = pr.merge(sha=head, merge_method="merge")
        assert (status.merged, status.sha) == (True, bare_rev(hub, "refs/heads/main"))
        assert git(hub.bare_path(REPO), "rev-list", "--parents", "-n1", status.sha).split()[1:] == [old_main, head]
        merged = gh.get_repo(REPO).get_pull(1)
        assert (merged.merged, merged.state, merged.merge_commit_sha, merged.head.sha) == (
            True,
            "closed",
            status.sha,
            head,
        )
        assert merged.merged_by.login == ALICE
        assert merged.is_merged()
        with pytest.raises(GithubException) as again:
            merged.merge()
        assert again.value.status == 405
    assert git(hub.bare_path(REPO), "show", "-s", "--format=%s", "main") == "Merge pull request #1 from acme/feature"


@pytest.mark.parametrize("method", ["squash", "rebase"])
def test_squash_and_rebase_merges(hub: FakeGitHub, method: str) -> None:
    old_main = bare_rev(hub, "refs/heads/main")
    with client(hub, ALICE_TOKEN) as gh:
        pr = gh.get_repo(REPO).create_pull(title="Feature", body="", base="main", head="feature")
        status = pr.merge(merge_method=method)
    bare = hub.bare_path(REPO)
    assert git(bare, "rev-list", "--parents", "-n1", "main").split()[1:] == [old_main]
    assert git(bare, "show", "main:feature.txt") == "new"
    subject = git(bare, "show", "-s", "--format=%s", "main")
    assert subject == ("Feature (#1)" if method == "squash" else "add feature")
    assert status.sha == bare_rev(hub, "refs/heads/main")
    assert not list(bare.glob("worktrees/*"))


def test_unknown_path_malformed_json_and_missing_token(hub: FakeGitHub) -> None:
    assert raw_request(hub, "GET", "/api/v3/nope") == (404, {"message": "Not Found"})
    assert raw_request(hub, "GET", f"/api/v3/repos/{REPO}/pulls/99") == (404, {"message": "Not Found"})
    assert raw_request(hub, "POST", f"/api/v3/repos/{REPO}/pulls", body="{oops")[0] == 400
    assert raw_request(hub, "GET", "/api/v3/user", token="") == (401, {"message": "Bad credentials"})
    with client(hub, ALICE_TOKEN) as gh, pytest.raises(UnknownObjectException):
        gh.get_repo(REPO).get_check_run(123456)


def test_every_url_is_rooted_at_the_fake(hub: FakeGitHub) -> None:
    def urls(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from urls(item)
        elif isinstance(value, list):
            for item in value:
                yield from urls(item)
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            yield value

    with client(hub, ALICE_TOKEN) as gh:
        pr = gh.get_repo(REPO).create_pull(title="Feature", body="", base="main", head="feature")
        pr.create_issue_comment("hi")
    found = list(urls(hub.pulls(REPO)))
    assert len(found) > 20
    api = [u for u in found if u.startswith(hub.base_url + "/")]
    web = [u for u in found if u.startswith(hub.web_url + "/") and not u.startswith(hub.base_url)]
    assert api and web
    assert sorted(api + web) == sorted(found)


def test_lists_are_paginated_with_link_headers(hub: FakeGitHub) -> None:
    with client(hub, ALICE_TOKEN, per_page=1) as gh:
        repo = gh.get_repo(REPO)
        repo.create_pull(title="Feature", body="", base="main", head="feature")
        repo.create_pull(title="Clash", body="", base="main", head="clash")
        assert [p.number for p in repo.get_pulls()] == [2, 1]  # newest first, as GitHub sorts
        assert repo.get_pulls().totalCount == 2
    pages = [r.query.get("page") for r in hub.requests if r.path.endswith("/pulls") and r.method == "GET"]
    assert "2" in pages
