"""TaskService: what callers can do with tasks, and how bad input is refused without a trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_server.app import open_deps
from mcp_server.config import load_settings
from mcp_server.errors import RepoNotUsable, TaskNotFound, UserInputError
from mcp_server.tasks.model import Actor, TaskState
from mcp_server.tasks.service import TaskService
from tests.helpers.gitrepo import git, init_repo
from tests.helpers.store_writer import ACTOR, new_task


def _nothing_stored(service: TaskService) -> bool:
    return service.store.all_ids() == []


def test_start_records_the_request_its_base_and_who_asked(service: TaskService, repo: Path, alice: Actor) -> None:
    task = service.start("  Add a --verbose flag\n\nIt should print each step.  ", alice)
    assert task.state == TaskState.REQUESTED and task.created_by == "human:alice"
    assert task.title == "Add a --verbose flag"
    assert task.request == "Add a --verbose flag\n\nIt should print each step."
    assert (task.repo, task.base_branch, task.base_commit) == (
        str(repo.resolve()),
        "main",
        git(repo, "rev-parse", "HEAD"),
    )
    [created] = service.store.events(task.id)
    assert created.payload["request"] == task.request and created.actor == "human:alice"


def test_long_titles_are_shortened_but_the_request_is_kept_whole(service: TaskService, alice: Actor) -> None:
    task = service.start("word " * 100, alice)
    assert len(task.title) <= 80 and task.title.endswith("…")
    assert task.request == ("word " * 100).strip()


def test_a_request_over_the_limit_is_refused_and_nothing_is_stored(service: TaskService, alice: Actor) -> None:
    with pytest.raises(UserInputError, match="20,001 characters; the limit is 20,000"):
        service.start("x" * 20_001, alice)
    assert _nothing_stored(service)
    assert service.start("x" * 20_000, alice).request == "x" * 20_000


@pytest.mark.parametrize(("request_text", "message"), [("   \n ", "empty"), ("a\x00b", "NUL")])
def test_empty_or_binary_requests_are_refused(
    service: TaskService, alice: Actor, request_text: str, message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        service.start(request_text, alice)
    assert _nothing_stored(service)


def test_a_repo_that_is_not_a_git_repository_is_refused(service: TaskService, alice: Actor, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RepoNotUsable, match="not inside a git repository.*git init"):
        service.start("change", alice, repo=str(plain))
    assert _nothing_stored(service) and not (plain / ".shipway").exists()


def test_a_repo_the_server_does_not_serve_is_refused(service: TaskService, alice: Actor, tmp_path: Path) -> None:
    other = init_repo(tmp_path / "other")
    with pytest.raises(RepoNotUsable, match="not served by this Shipway server.*SHIPWAY_EXTRA_REPOS"):
        service.start("change", alice, repo=str(other))
    assert _nothing_stored(service)


def test_extra_repos_can_be_served(repo: Path, tmp_path: Path, alice: Actor) -> None:
    other = init_repo(tmp_path / "other", branch="trunk")
    service = open_deps(load_settings(repo=repo, extra_repos=[other])).tasks
    task = service.start("change", alice, repo=str(other))
    assert (task.repo, task.base_branch) == (str(other.resolve()), "trunk")


def test_relative_repo_paths_and_empty_repos_are_refused(
    service: TaskService, alice: Actor, repo: Path, tmp_path: Path
) -> None:
    with pytest.raises(RepoNotUsable, match="absolute path"):
        service.start("change", alice, repo="repo")
    empty = load_settings(repo=init_repo(tmp_path / "empty", commit=False))
    with pytest.raises(RepoNotUsable, match="no commits yet"):
        open_deps(empty).tasks.start("change", alice)


def test_ids_resolve_from_a_unique_prefix(service: TaskService, alice: Actor) -> None:
    task = service.start("change", alice)
    assert service.get(task.id[:4]).id == task.id
    assert service.get(task.id.upper()).id == task.id


def test_ambiguous_malformed_and_unknown_ids_say_what_to_do(service: TaskService) -> None:
    for suffix in ("1", "2"):
        service.store.create(new_task().model_copy(update={"id": f"abcd0000000{suffix}"}), actor=ACTOR, payload={})
    with pytest.raises(TaskNotFound, match="matches several tasks.*abcd00000001, abcd00000002"):
        service.get("abcd")
    with pytest.raises(TaskNotFound, match="not a task id"):
        service.get("../../etc/passwd")
    with pytest.raises(TaskNotFound, match="no task 'ffff'.*list_tasks"):
        service.get("ffff")


def test_abort_ends_a_live_task_with_its_reason_logged(service: TaskService, alice: Actor) -> None:
    task = service.start("change", alice)
    aborted = service.abort(task.id, "not needed any more", alice)
    assert aborted.state == TaskState.ABORTED and aborted.reason == "not needed any more"
    last = service.store.events(task.id)[-1]
    assert (last.action, last.actor, last.payload) == (
        "aborted",
        "human:alice",
        {"reason": "not needed any more"},
    )


def test_aborting_a_finished_task_is_refused_and_changes_nothing(service: TaskService, alice: Actor) -> None:
    task = service.abort(service.start("change", alice).id, "first", alice)
    with pytest.raises(UserInputError, match="already ended"):
        service.abort(task.id, "second", alice)
    assert service.get(task.id) == task
    with pytest.raises(UserInputError, match="reason is empty"):
        service.abort(service.start("other", alice).id, " ", alice)


def test_the_log_pages_and_reports_the_chain(service: TaskService, alice: Actor) -> None:
    task = service.start("change", alice)
    for n in range(5):
        service.store.record(task.id, actor=ACTOR, action="note", payload={"n": n})
    page = service.log(task.id, after_seq=2, limit=2)
    assert [e.seq for e in page.events] == [3, 4] and page.total == 6 and page.chain.ok
    with pytest.raises(UserInputError, match="limit"):
        service.log(task.id, limit=0)


def test_list_rejects_out_of_range_pages(service: TaskService) -> None:
    with pytest.raises(UserInputError, match="between 1 and 200"):
        service.page(limit=500)
    with pytest.raises(UserInputError, match="offset"):
        service.page(offset=-1)
