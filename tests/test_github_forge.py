"""The review gate over `GitHubForge`, against the fake GitHub on 127.0.0.1 (tests/helpers/fake_github.py).

Real parts throughout: PyGithub over HTTP, git pushing over smart HTTP with the token, the fake
keeping PRs, reviews and statuses and merging for real in its bare repository, the sandboxed
test run that takes a task to `testing`. The token belongs to the agent's account; people
review with their own accounts on the fake, or in Shipway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github

from mcp_server.app import ServerDeps
from mcp_server.config import load_settings
from mcp_server.errors import ConfigError
from mcp_server.review_gate import GateRefused
from mcp_server.review_web import ReviewSite
from mcp_server.tasks.model import Task, TaskState
from tests.helpers.fake_github import FakeGitHub, fake_github  # noqa: F401
from tests.helpers.gitrepo import git
from tests.test_ci_gate import green_sample
from tests.test_review_gate import ADD_DOUBLE, AGENT, CAROL, coding, edit, open_green
from tests.test_sandbox_tool import needs_bwrap
from tools.forge.base import ForgeUnavailable

pytestmark = needs_bwrap

REPO = "acme/green"
BOT, BOT_TOKEN = "shipway-agent", "ghp_agent_token_0123456789abcdef"
CAROL_GH, CAROL_TOKEN = "carol", "ghp_carol_token_0123456789abcdef"
PLAIN_HTTP = "http://github.example.com/api/v3"
OTHER_BOT, OTHER_BOT_TOKEN = "deploy-bot", "ghp_other_bot_0123456789abcdef"


@pytest.fixture
def hub(fake_github: FakeGitHub, tmp_path: Path) -> Iterator[tuple[FakeGitHub, ServerDeps]]:  # noqa: F811
    fake_github.add_user(BOT, BOT_TOKEN)
    fake_github.add_user(CAROL_GH, CAROL_TOKEN)
    fake_github.add_user(OTHER_BOT, OTHER_BOT_TOKEN, kind="Bot")
    repo = green_sample(tmp_path / "green")
    fake_github.add_repo(REPO, source=repo)
    deps = open_green(repo, forge="github", github_repo=REPO, github_token=BOT_TOKEN,
                      github_api_url=fake_github.base_url)  # fmt: skip
    yield fake_github, deps
    deps.ci.close()
    deps.tasks.store.close()


def as_user(fake: FakeGitHub, token: str) -> Github:
    return Github(base_url=fake.base_url, auth=Auth.Token(token), retry=None, seconds_between_requests=0,
                  seconds_between_writes=0)  # fmt: skip


def opened(deps: ServerDeps) -> Task:
    """A task with an approved plan, one edit, a test run and its PR opened on the fake (now in `ci`)."""
    task = coding(deps)
    edit(deps, task, ADD_DOUBLE)
    deps.tests.run_task(task.id, "affected", None, AGENT, baseline=False)
    deps.gate.open_pr(task.id, AGENT)
    return deps.tasks.get(task.id)


def green_ci(fake: FakeGitHub, deps: ServerDeps, task: Task) -> str:
    head = deps.gate.pr(task.id).head_sha
    fake.set_status(REPO, head, "success", context="ci/tests")
    fake.add_check_run(REPO, head, "lint", conclusion="success")
    assert deps.ci.status(task.id).state == "success"
    assert deps.tasks.get(task.id).state == TaskState.REVIEW
    return head


def github_pull(fake: FakeGitHub) -> dict[str, Any]:
    (pull,) = fake.pulls(REPO)
    return pull


def in_review(fake: FakeGitHub, deps: ServerDeps) -> tuple[Task, str]:
    task = opened(deps)
    return deps.tasks.get(task.id), green_ci(fake, deps, task)


def approve_on_github(fake: FakeGitHub, token: str, number: int, commit: str, body: str = "LGTM") -> None:
    with as_user(fake, token) as gh:
        gh.get_repo(REPO).get_pull(number).create_review(body=body, event="APPROVE", commit=gh.get_repo(REPO)
                                                         .get_commit(commit))  # fmt: skip


# -- publishing


def test_open_pr_pushes_with_the_token_and_opens_a_draft_with_the_whole_story(hub: Any) -> None:
    fake, deps = hub
    task = opened(deps)
    pull = github_pull(fake)
    head = deps.gate.pr(task.id).head_sha
    assert pull["draft"] is True and pull["head"]["ref"] == f"shipway/{task.id}" and pull["head"]["sha"] == head
    assert pull["user"]["login"] == BOT and pull["base"]["ref"] == "main"
    body = pull["body"]
    assert "## Request" in body and "## Plan" in body and "calc/arith.py" in body and "## Tests" in body
    assert "## Audit" in body and "event chain head" in body and f"shipway task verify {task.id}" in body
    pushes = [r for r in fake.requests if r.path.endswith("git-receive-pack")]
    assert pushes and all(r.login == BOT for r in pushes)
    assert git(fake.bare_path(REPO), "rev-parse", f"refs/heads/shipway/{task.id}") == head
    pr = deps.gate.pr(task.id)
    assert (pr.forge, pr.number, pr.draft, pr.url) == ("github", pull["number"], True, pull["html_url"])


def test_the_token_is_never_stored_logged_or_shown(hub: Any) -> None:
    fake, deps = hub
    task = opened(deps)
    events = json.dumps([e.model_dump(mode="json") for e in deps.tasks.store.events(task.id)])
    configs = (deps.settings.repo / ".git" / "config").read_text() + (fake.bare_path(REPO) / "config").read_text()
    pr_json = deps.gate.pr(task.id).model_dump_json()
    for place in (events, configs, pr_json, github_pull(fake)["body"]):
        assert BOT_TOKEN not in place


def test_a_refused_token_is_an_actionable_error_that_hides_the_token_and_changes_nothing(hub: Any) -> None:
    fake, deps = hub
    wrong = "ghp_wrong_token_0123456789abcdef"
    bad = open_green(deps.settings.repo, forge="github", github_repo=REPO, github_token=wrong,
                     github_api_url=fake.base_url)  # fmt: skip
    try:
        task = coding(bad)
        edit(bad, task, ADD_DOUBLE)
        bad.tests.run_task(task.id, "affected", None, AGENT, baseline=False)
        before = bad.tasks.get(task.id)
        with pytest.raises(ForgeUnavailable) as refused:
            bad.gate.open_pr(task.id, AGENT)
        assert wrong not in str(refused.value) and "failed" in str(refused.value)
        assert bad.tasks.get(task.id).version == before.version and fake.pulls(REPO) == []
    finally:
        bad.ci.close()
        bad.tasks.store.close()


# -- CI from GitHub's statuses and check runs


def test_ci_is_pending_without_checks_and_fails_on_any_red_check(hub: Any) -> None:
    fake, deps = hub
    task = opened(deps)
    pending = deps.ci.status(task.id)
    assert (pending.provider, pending.state) == ("github", "pending") and "no status or check run" in pending.summary
    head = pending.commit
    fake.set_status(REPO, head, "success", context="ci/tests")
    fake.add_check_run(REPO, head, "lint", conclusion="failure")
    failed = deps.ci.status(task.id)
    assert failed.state == "failure" and {c.name: c.state for c in failed.checks} == {
        "ci/tests": "success", "lint": "failure",
    }  # fmt: skip
    assert deps.tasks.get(task.id).state == TaskState.NEEDS_CHANGES
    verdicts = [e for e in deps.tasks.store.events(task.id) if e.action == "ci_failed"]
    deps.ci.status(task.id)  # asking again records nothing new
    assert len([e for e in deps.tasks.store.events(task.id) if e.action == "ci_failed"]) == len(verdicts) == 1
    assert verdicts[0].payload["failing"] == ["lint: failure"]


def test_green_checks_move_the_task_to_review_and_take_the_pr_out_of_draft(hub: Any) -> None:
    fake, deps = hub
    task, _ = in_review(fake, deps)
    assert github_pull(fake)["draft"] is False
    assert deps.gate.pr(task.id).ci == "success"


# -- reviews on GitHub


def test_a_persons_github_approval_of_the_head_counts_and_the_merge_happens_on_github(hub: Any) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    number = github_pull(fake)["number"]
    old_main = git(fake.bare_path(REPO), "rev-parse", "refs/heads/main")
    approve_on_github(fake, CAROL_TOKEN, number, head, "Looks right")
    pr = deps.gate.pr(task.id)
    assert (pr.approved_head, pr.task_state, pr.missing) == (head, TaskState.APPROVED, [])
    decision = pr.decisions[-1]
    assert (decision.action, decision.by, decision.comment) == ("pr_approved", "human:github:carol", "Looks right")
    deps.gate.pr(task.id)  # reading again imports nothing twice
    assert len([e for e in deps.tasks.store.events(task.id) if e.action == "pr_approved"]) == 1
    merged = deps.gate.merge_pr(task.id, AGENT)
    new_main = git(fake.bare_path(REPO), "rev-parse", "refs/heads/main")
    parents = git(fake.bare_path(REPO), "rev-list", "--parents", "-n1", new_main).split()[1:]
    assert merged.state == "merged" and merged.merge_commit == new_main and parents == [old_main, head]
    assert github_pull(fake)["merged"] is True
    with pytest.raises(GateRefused, match="already merged"):
        deps.gate.merge_pr(task.id, AGENT)


def test_an_approval_by_a_bot_account_is_refused_once_and_recorded(hub: Any) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    approve_on_github(fake, OTHER_BOT_TOKEN, github_pull(fake)["number"], head)
    first = deps.gate.pr(task.id)
    deps.gate.pr(task.id)
    refused = [e for e in deps.tasks.store.events(task.id) if e.action == "gate_refused"]
    assert len(refused) == 1 and refused[0].actor == f"agent:github:{OTHER_BOT}"
    assert "not a person" in refused[0].payload["reason"] and refused[0].payload["via"] == "github"
    assert (first.approved_head, first.task_state) == (None, TaskState.REVIEW)


def test_the_agents_own_account_cannot_approve_on_github_either(hub: Any) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    with pytest.raises(Exception, match="own pull request"):
        approve_on_github(fake, BOT_TOKEN, github_pull(fake)["number"], head)
    assert deps.gate.pr(task.id).approved_head is None


def test_a_github_approval_of_an_older_commit_is_stale_and_refused(hub: Any) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    base = deps.tasks.get(task.id).base_commit
    approve_on_github(fake, CAROL_TOKEN, github_pull(fake)["number"], base, "approving the old one")
    pr = deps.gate.pr(task.id)
    refused = [e for e in deps.tasks.store.events(task.id) if e.action == "gate_refused"]
    assert pr.approved_head is None and pr.task_state == TaskState.REVIEW
    assert len(refused) == 1 and "review the new commits" in refused[0].payload["reason"]
    assert refused[0].actor == "human:github:carol" and head[:12] in refused[0].payload["reason"]


def test_changes_requested_on_github_send_the_task_back(hub: Any) -> None:
    fake, deps = hub
    task, _ = in_review(fake, deps)
    with as_user(fake, CAROL_TOKEN) as gh:
        gh.get_repo(REPO).get_pull(github_pull(fake)["number"]).create_review(body="Name it twice()",
                                                                               event="REQUEST_CHANGES")  # fmt: skip
    pr = deps.gate.pr(task.id)
    assert pr.task_state == TaskState.NEEDS_CHANGES
    assert (pr.decisions[-1].action, pr.decisions[-1].comment) == ("changes_requested", "Name it twice()")


# -- decisions taken in Shipway, shown on GitHub


def test_decisions_in_shipway_are_posted_on_the_github_pr_and_a_rejection_closes_it(hub: Any) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    deps.gate.approve_pr(task.id, "ship it", CAROL, head)
    deps.gate.reject_pr(task.id, "on second thought, no", CAROL)
    number = github_pull(fake)["number"]
    with as_user(fake, BOT_TOKEN) as gh:
        comments = [c.body for c in gh.get_repo(REPO).get_pull(number).get_issue_comments()]
    assert any("**Approved** in Shipway by `carol`" in c and "> ship it" in c for c in comments)
    assert any("**Rejected**" in c for c in comments)
    assert github_pull(fake)["state"] == "closed"


# -- what merging needs


def test_merging_without_approval_or_green_ci_is_refused_with_every_reason(hub: Any) -> None:
    fake, deps = hub
    task = opened(deps)
    with pytest.raises(GateRefused) as refused:
        deps.gate.merge_pr(task.id, AGENT)
    assert "no approval" in str(refused.value) and "CI is not green" in str(refused.value)
    assert github_pull(fake)["merged"] is False and github_pull(fake)["state"] == "open"


def test_a_conflict_on_githubs_base_is_listed_and_blocks_the_merge(hub: Any, tmp_path: Path) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(fake.bare_path(REPO)), str(clone))
    arith = clone / "calc" / "arith.py"
    arith.write_text(
        arith.read_text().replace("def mean", "def triple(x: int) -> int:\n    return 3 * x\n\n\ndef mean")
    )
    git(clone, "-c", "user.name=Dave", "-c", "user.email=d@x", "commit", "-qam", "triple")
    git(clone, "push", "-q", "origin", "main")
    deps.gate.approve_pr(task.id, "", CAROL, head)
    pr = deps.gate.pr(task.id)
    assert pr.conflicts == ["calc/arith.py"] and any("conflicts" in m for m in pr.missing)
    with pytest.raises(GateRefused, match="conflicts"):
        deps.gate.merge_pr(task.id, AGENT)
    assert github_pull(fake)["merged"] is False


# -- settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"forge": "github", "github_repo": REPO}, "SHIPWAY_GITHUB_TOKEN"),
        ({"forge": "github", "github_token": BOT_TOKEN}, "SHIPWAY_GITHUB_REPO"),
        ({"forge": "github", "github_repo": "not a repo", "github_token": BOT_TOKEN}, "owner/name"),
        (
            {
                "forge": "github",
                "github_repo": REPO,
                "github_token": BOT_TOKEN,
                "github_api_url": PLAIN_HTTP,
            },
            "https",
        ),
        ({"ci": "forge"}, "SHIPWAY_FORGE=github"),
    ],
)
def test_github_settings_are_checked_up_front(tmp_path: Path, settings: dict[str, str], message: str) -> None:
    repo = green_sample(tmp_path / "green")
    with pytest.raises(ConfigError, match=message):
        load_settings(repo=repo, **settings)


def test_the_review_page_shows_a_github_approval_it_imported_while_loading(hub: Any) -> None:
    fake, deps = hub
    task, head = in_review(fake, deps)
    approve_on_github(fake, CAROL_TOKEN, github_pull(fake)["number"], head)
    view = ReviewSite(deps).gather(task.id)
    assert view.task.state == TaskState.APPROVED and view.pr is not None and view.pr.approved_head == head
    assert any(e.action == "pr_approved" and e.actor == "human:github:carol" for e in view.events)
