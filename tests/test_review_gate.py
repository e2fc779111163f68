"""The review gate end to end: plans and PRs decided by people, enforced by the server, merged by git.

Everything is real: a copy of examples/pytest-sample without its deliberately failing tests, the
bubblewrap sandbox for test runs, the local CI on the task branch's head and the local forge
merging into `main`. Every refused attempt must be in the task's log and change nothing else.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.errors import UserInputError
from mcp_server.review_gate import GateRefused, PlanView, PullRequest
from mcp_server.server import create_server
from mcp_server.tasks.model import Actor, Task, TaskState
from tests.helpers.gitrepo import git
from tests.helpers.samples import commit_file
from tests.test_ci_gate import green_sample
from tests.test_sandbox_tool import needs_bwrap, shipway
from tools.edits.blocks import EditBlock
from tools.plan import Plan

pytestmark = needs_bwrap

BOB = Actor(kind="human", name="bob")  # starts the tasks
CAROL = Actor(kind="human", name="carol")  # reviews them
AGENT = Actor(kind="agent", name="coder")
PLAN = Plan(
    goal="Add calc.arith.double",
    steps=["add double() next to add()", "test it"],
    files=["calc/arith.py", "tests/"],
    tests=["tests/test_double.py"],
)
OTHER_PLAN = Plan(goal="Add calc.arith.double, tested first", steps=["write the test", "add double()"],
                  files=["calc/arith.py", "tests/test_double.py"])  # fmt: skip
ADD_DOUBLE = EditBlock(
    path="calc/arith.py", search="def mean", replace="def double(x: int) -> int:\n    return 2 * x\n\n\ndef mean"
)
TEST_DOUBLE = EditBlock(
    path="tests/test_double.py",
    content="from calc.arith import double\n\n\ndef test_double() -> None:\n    assert double(3) == 6\n",
)
TEST_ZERO = EditBlock(
    path="tests/test_zero.py",
    content="from calc.arith import add\n\n\ndef test_add_zero() -> None:\n    assert add(0, 0) == 0\n",
)
SWAP_ADD = EditBlock(path="calc/arith.py", search="    return a + b", replace="    return b + a")
BREAK_ADD = EditBlock(path="calc/arith.py", search="    return a + b", replace="    return a - b")


# -- fixtures and helpers


def open_green(repo: Path, **settings: Any) -> ServerDeps:
    return open_deps(load_settings(repo=repo, test_python=sys.executable, **settings))


@pytest.fixture
def green(tmp_path: Path) -> Iterator[ServerDeps]:
    deps = open_green(green_sample(tmp_path / "green"))
    yield deps
    deps.ci.close()
    deps.tasks.store.close()


@pytest.fixture
def reopen(green: ServerDeps) -> Iterator[Callable[..., ServerDeps]]:
    """Another server over the same repository and task store, with other settings."""
    opened: list[ServerDeps] = []

    def make(**settings: Any) -> ServerDeps:
        opened.append(open_green(green.settings.repo, **settings))
        return opened[-1]

    yield make
    for deps in opened:
        deps.ci.close()
        deps.tasks.store.close()


def ref(deps: ServerDeps, name: str) -> str:
    return git(deps.settings.repo, "rev-parse", "--verify", name)


def branch_head(deps: ServerDeps, task: Task) -> str:
    return ref(deps, f"refs/heads/shipway/{task.id}")


def snapshot(deps: ServerDeps) -> tuple[str, str, str]:
    """Every ref, the checked-out branch and the main checkout's local changes."""
    repo = deps.settings.repo
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return refs, git(repo, "symbolic-ref", "-q", "HEAD"), git(repo, "status", "--porcelain")


def proposed(deps: ServerDeps, plan: Plan = PLAN, request: str = "Add a double() helper to calc.arith") -> Task:
    task = deps.tasks.start(request, BOB)
    assert deps.gate.propose_plan(task.id, plan, AGENT).task_state == TaskState.PLAN_REVIEW
    return deps.tasks.get(task.id)


def coding(deps: ServerDeps) -> Task:
    task = proposed(deps)
    assert deps.gate.approve_plan(task.id, "go ahead", CAROL).task_state == TaskState.CODING
    return deps.tasks.get(task.id)


def edit(deps: ServerDeps, task: Task, *blocks: EditBlock) -> str:
    report = deps.workspaces.edit(task.id, AGENT, blocks=list(blocks))
    assert report.status == "applied" and report.commit, report
    return report.commit


def open_tested_pr(deps: ServerDeps, task: Task) -> PullRequest:
    """run_tests (coding -> testing), open_pr (-> pr_open -> ci) and wait for the real CI."""
    deps.tests.run_task(task.id, "affected", None, AGENT, baseline=False)
    assert deps.tasks.get(task.id).state == TaskState.TESTING
    deps.gate.open_pr(task.id, AGENT)
    deps.ci.close()
    return deps.gate.pr(task.id)


def in_review(deps: ServerDeps, *blocks: EditBlock) -> Task:
    task = coding(deps)
    edit(deps, task, *(blocks or (ADD_DOUBLE,)))
    pr = open_tested_pr(deps, task)
    assert (pr.state, pr.ci, pr.task_state) == ("open", "success", TaskState.REVIEW), pr
    return deps.tasks.get(task.id)


def approved(deps: ServerDeps, *blocks: EditBlock) -> Task:
    task = in_review(deps, *blocks)
    pr = deps.gate.approve_pr(task.id, "looks good", CAROL, branch_head(deps, task))
    assert pr.task_state == TaskState.APPROVED and pr.missing == [], pr
    return deps.tasks.get(task.id)


def refused(deps: ServerDeps, task: Task, attempt: str, call: Callable[[], object]) -> str:
    """`call` must be refused by the gate, leaving only a `gate_refused` event behind; returns the reason."""
    before, repo_before = deps.tasks.get(task.id), snapshot(deps)
    with pytest.raises(GateRefused) as refusal:
        call()
    after = deps.tasks.get(task.id)
    event = deps.tasks.store.events(task.id)[-1]
    assert (after.state, after.version) == (before.state, before.version + 1)
    assert (event.action, event.from_state, event.to_state) == ("gate_refused", before.state, before.state)
    assert event.payload["attempt"] == attempt and event.payload["reason"]
    assert str(refusal.value) == f"{attempt} refused: {event.payload['reason']}"
    assert snapshot(deps) == repo_before, "a refused attempt must not touch the repository"
    return event.payload["reason"]


def actions(deps: ServerDeps, task: Task) -> list[tuple[str, str]]:
    return [(e.action, e.actor) for e in deps.tasks.store.events(task.id)]


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


# -- 1. the whole loop over MCP


@pytest.mark.anyio
async def test_an_agent_and_a_reviewer_session_take_a_change_from_plan_to_merged_main(green: ServerDeps) -> None:
    repo = green.settings.repo
    base = ref(green, "main")
    reviewer_name = f"human:{getpass.getuser()}"
    async with Client(create_server(green)) as agent, Client(create_server(green, toolset="reviewer")) as reviewer:
        task = Task.model_validate(await call(agent, "start_task", request="Add a double() helper to calc.arith"))
        plan = PlanView.model_validate(await call(agent, "propose_plan", task_id=task.id, plan=PLAN.model_dump()))
        assert (plan.status, plan.task_state, plan.plan) == ("proposed", TaskState.PLAN_REVIEW, PLAN)

        read = PlanView.model_validate(await call(reviewer, "get_plan", task_id=task.id))
        decided = PlanView.model_validate(
            await call(reviewer, "approve_plan", task_id=task.id, comment="go", plan_sha256=read.plan_sha256)
        )
        assert (decided.status, decided.task_state) == ("approved", TaskState.CODING)

        blocks = [ADD_DOUBLE.model_dump(exclude_defaults=True), TEST_DOUBLE.model_dump(exclude_defaults=True)]
        await call(agent, "apply_edit", task_id=task.id, blocks=blocks)
        tested = await call(agent, "run_tests", task_id=task.id, baseline=False)
        assert tested["status"] == "passed"

        opened = PullRequest.model_validate(await call(agent, "open_pr", task_id=task.id, title="Add double()"))
        assert opened.state == "open" and opened.title == "Add double()" and opened.ci in ("pending", "success")
        assert "## Plan" in (opened.body or "") and "calc/arith.py" in (opened.body or "")
        ci = await call(agent, "ci_status", task_id=task.id, wait_s=120)
        assert (ci["state"], ci["task_state"]) == ("success", "review"), ci

        pr = PullRequest.model_validate(await call(reviewer, "get_pr", task_id=task.id))
        assert pr.missing == ["no approval of the current head by a human reviewer"]
        ok = PullRequest.model_validate(
            await call(reviewer, "approve_pr", task_id=task.id, comment="lgtm", head_sha=pr.head_sha)
        )
        assert (ok.approved_head, ok.missing, ok.task_state) == (pr.head_sha, [], TaskState.APPROVED)

        merged = PullRequest.model_validate(await call(agent, "merge_pr", task_id=task.id))

    assert (merged.state, merged.task_state) == ("merged", TaskState.MERGED)
    assert merged.merge_commit == ref(green, "main")
    assert "def double(x: int) -> int:" in git(repo, "show", "main:calc/arith.py")
    assert git(repo, "show", "main:tests/test_double.py").startswith("from calc.arith import double")
    assert git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [base, pr.head_sha]
    assert "def double" in (repo / "calc" / "arith.py").read_text(), "the checked-out main follows the merge"
    assert git(repo, "status", "--porcelain") == ""
    assert not (green.settings.state_path / "worktrees" / task.id).exists(), "a merged task's worktree is removed"
    assert green.tasks.verify(task.id).ok
    agent_name = "agent:mcp-client"
    assert actions(green, task) == [
        ("created", agent_name),
        ("planning_started", agent_name),
        ("plan_proposed", agent_name),
        ("plan_approved", reviewer_name),
        ("edit_applied", agent_name),
        ("tests_run", agent_name),
        ("pr_opened", agent_name),
        ("ci_started", "system:ci"),
        ("ci_passed", "system:ci"),
        ("pr_approved", reviewer_name),
        ("pr_merged", agent_name),
    ]
    last = green.tasks.store.events(task.id)[-1].payload
    assert last["merge_commit"] == merged.merge_commit and last["method"] == "merge commit"


# -- 2. attacks on the gate


def test_an_agent_cannot_approve_or_reject_a_plan(green: ServerDeps) -> None:
    task = proposed(green)
    reason = refused(green, task, "approve_plan", lambda: green.gate.approve_plan(task.id, "fine by me", AGENT))
    assert reason == "agent:coder is not a person; only a human reviewer can decide"
    refused(green, task, "reject_plan", lambda: green.gate.reject_plan(task.id, "redo it", AGENT))
    system = Actor(kind="system", name="ci")
    assert "not a person" in refused(green, task, "approve_plan", lambda: green.gate.approve_plan(task.id, "", system))
    view = green.gate.plan(task.id)
    assert (view.status, view.decisions, view.task_state) == ("proposed", [], TaskState.PLAN_REVIEW)
    assert green.tasks.approved_plan_files(task.id) is None


def test_an_agent_cannot_approve_a_pr_and_nothing_merges_without_a_human_approval(green: ServerDeps) -> None:
    task = in_review(green)
    reason = refused(green, task, "approve_pr", lambda: green.gate.approve_pr(task.id, "lgtm", AGENT))
    assert "agent:coder is not a person" in reason
    reason = refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, AGENT))
    assert reason == "no approval of the current head by a human reviewer"
    assert "no approval" in refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, CAROL))
    pr = green.gate.pr(task.id)
    assert (pr.approved_head, pr.task_state, pr.decisions) == (None, TaskState.REVIEW, [])
    assert green.tasks.verify(task.id).ok


def test_an_approval_is_bound_to_the_head_the_reviewer_saw(green: ServerDeps) -> None:
    task = coding(green)
    first = edit(green, task, ADD_DOUBLE)
    second = edit(green, task, TEST_DOUBLE)
    assert open_tested_pr(green, task).task_state == TaskState.REVIEW

    reason = refused(green, task, "approve_pr", lambda: green.gate.approve_pr(task.id, "ok", CAROL, first))
    assert reason == f"you reviewed {first[:12]} but the head is now {second[:12]}; review the new commits"
    pr = green.gate.approve_pr(task.id, "ok", CAROL, second)
    assert (pr.approved_head, pr.task_state) == (second, TaskState.APPROVED)

    # Moving the head back (revert_edit) after the approval voids it at once, like any new head.
    assert green.workspaces.revert(task.id, AGENT).head_commit == first
    reverted, lost, back = green.tasks.store.events(task.id)[-3:]
    assert reverted.action == "edit_reverted"
    assert (lost.action, lost.actor, lost.to_state) == ("approval_lost", "system:shipway", TaskState.NEEDS_CHANGES)
    assert (back.action, back.to_state) == ("coding", TaskState.CODING)
    main = ref(green, "main")
    reason = refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, AGENT))
    assert "no approval of the current head" in reason
    assert ref(green, "main") == main and green.gate.pr(task.id).approved_head is None


def test_a_new_push_after_approval_voids_it(green: ServerDeps) -> None:
    task = approved(green)
    main = ref(green, "main")
    new = edit(green, task, TEST_DOUBLE)
    lost, back = green.tasks.store.events(task.id)[-2:]
    assert (lost.action, lost.actor, lost.from_state, lost.to_state, lost.payload["head_sha"]) == (
        "approval_lost", "system:shipway", TaskState.APPROVED, TaskState.NEEDS_CHANGES, new,
    )  # fmt: skip
    assert (back.action, back.from_state, back.to_state) == ("coding", TaskState.NEEDS_CHANGES, TaskState.CODING)

    pr = green.gate.pr(task.id)
    assert (pr.head_sha, pr.approved_head, pr.ci) == (new, None, "none")
    assert pr.decisions[-1].action == "approval_lost"
    reason = refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, AGENT))
    assert "no approval of the current head by a human reviewer" in reason
    assert f"CI is not green on {new[:12]} (none)" in reason
    assert ref(green, "main") == main


def test_red_ci_blocks_approval_and_merge_and_is_named(green: ServerDeps) -> None:
    task = coding(green)
    edit(green, task, BREAK_ADD)
    pr = open_tested_pr(green, task)
    assert (pr.ci, pr.task_state) == ("failure", TaskState.NEEDS_CHANGES)
    assert green.tasks.store.events(task.id)[-1].action == "ci_failed"
    assert any(m.startswith(f"CI is not green on {pr.head_sha[:12]} (failure)") for m in pr.missing)

    reason = refused(green, task, "approve_pr", lambda: green.gate.approve_pr(task.id, "ship it", CAROL))
    assert reason == "the PR is not waiting for review (task is needs_changes)"
    reason = refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, CAROL))
    assert f"CI is not green on {pr.head_sha[:12]} (failure)" in reason and "no approval" in reason
    assert "return a + b" in git(green.settings.repo, "show", "main:calc/arith.py")


def test_with_forbid_self_approval_the_tasks_creator_cannot_approve_it(
    green: ServerDeps, reopen: Callable[..., ServerDeps]
) -> None:
    strict = reopen(forbid_self_approval=True)
    task = proposed(strict)
    reason = refused(strict, task, "approve_plan", lambda: strict.gate.approve_plan(task.id, "mine", BOB))
    assert reason == "human:bob started this task and may not approve it (SHIPWAY_FORBID_SELF_APPROVAL)"
    assert strict.gate.approve_plan(task.id, "fine", CAROL).status == "approved"
    reason = refused(strict, task, "approve_pr", lambda: strict.gate.approve_pr(task.id, "mine", BOB))
    assert "human:bob started this task" in reason

    # Without the setting the creator may approve their own plan.
    own = proposed(green)
    assert green.gate.approve_plan(own.id, "mine", BOB).status == "approved"


def test_approving_a_plan_that_changed_since_it_was_read_is_refused(green: ServerDeps) -> None:
    task = proposed(green)
    seen = green.gate.plan(task.id).plan_sha256
    assert seen == PLAN.sha256()
    green.gate.reject_plan(task.id, "write the test first", CAROL)
    green.gate.propose_plan(task.id, OTHER_PLAN, AGENT)
    reason = refused(green, task, "approve_plan", lambda: green.gate.approve_plan(task.id, "ok", BOB, seen))
    assert reason == "the plan changed since you read it; read it again"
    assert green.gate.plan(task.id).status == "proposed"
    view = green.gate.approve_plan(task.id, "ok", BOB, OTHER_PLAN.sha256())
    assert (view.status, view.plan) == ("approved", OTHER_PLAN)
    assert green.tasks.approved_plan_files(task.id) == OTHER_PLAN.files


# -- 3. conflicts


def test_a_conflict_with_main_is_reported_and_blocks_the_merge(green: ServerDeps) -> None:
    repo = green.settings.repo
    task = coding(green)
    edit(green, task, SWAP_ADD)
    original = git(repo, "show", "main:calc/arith.py") + "\n"
    moved = commit_file(repo, "calc/arith.py", original.replace("return a + b", "return a + b  # on main"))
    assert ref(green, "main") != task.base_commit
    assert open_tested_pr(green, task).conflicts == ["calc/arith.py"]

    pr = green.gate.approve_pr(task.id, "the change itself is fine", CAROL)
    assert pr.conflicts == ["calc/arith.py"]
    assert pr.missing == ["conflicts with main in: calc/arith.py"]
    reason = refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, AGENT))
    assert reason == "conflicts with main in: calc/arith.py"
    assert ref(green, "main") == moved
    assert "# on main" in (repo / "calc" / "arith.py").read_text()
    assert green.tasks.get(task.id).state == TaskState.APPROVED


# -- 4. where the base branch lives


def test_local_changes_in_the_main_checkout_block_the_merge_until_stashed(green: ServerDeps) -> None:
    repo = green.settings.repo
    task = approved(green)
    main = ref(green, "main")
    local = repo / "calc" / "arith.py"
    local.write_text(local.read_text() + "\n# work in progress\n")

    reason = refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, AGENT))
    assert reason.startswith("main is checked out in ")
    assert reason.endswith("commit or stash the local changes there, then merge again")
    assert ref(green, "main") == main and local.read_text().endswith("# work in progress\n")
    assert green.gate.pr(task.id).task_state == TaskState.APPROVED

    git(repo, "stash", "-q")
    merged = green.gate.merge_pr(task.id, AGENT)
    assert merged.state == "merged" and ref(green, "main") == merged.merge_commit
    assert "def double" in local.read_text()


def test_a_base_branch_that_is_not_checked_out_moves_by_ref_and_the_checkout_is_left_alone(
    green: ServerDeps,
) -> None:
    repo = green.settings.repo
    base = ref(green, "main")
    task = approved(green)
    git(repo, "switch", "-q", "-c", "elsewhere")
    local = repo / "calc" / "arith.py"
    local.write_text(local.read_text() + "\n# local edit on another branch\n")
    files_before = local.read_text()
    status_before = git(repo, "status", "--porcelain")

    merged = green.gate.merge_pr(task.id, AGENT)
    assert merged.state == "merged" and ref(green, "main") == merged.merge_commit
    assert git(repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [base, branch_head(green, task)]
    assert "def double" in git(repo, "show", "main:calc/arith.py")
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/elsewhere"
    assert ref(green, "elsewhere") == base
    assert local.read_text() == files_before and "def double" not in files_before
    assert git(repo, "status", "--porcelain") == status_before


# -- 5. merge methods


def test_the_ff_method_fast_forwards_an_unmoved_main_and_merges_a_moved_one(
    green: ServerDeps, reopen: Callable[..., ServerDeps]
) -> None:
    ff = reopen(merge_method="ff")
    first, second = approved(ff, ADD_DOUBLE), approved(ff, TEST_ZERO)
    first_head, second_head = branch_head(ff, first), branch_head(ff, second)

    merged = ff.gate.merge_pr(first.id, AGENT)
    assert merged.merge_commit == first_head == ref(ff, "main"), "main had not moved: a fast-forward"
    assert ff.tasks.store.events(first.id)[-1].payload["method"] == "fast-forward"
    assert git(ff.settings.repo, "status", "--porcelain") == ""

    merged = ff.gate.merge_pr(second.id, AGENT)
    assert merged.merge_commit == ref(ff, "main") != second_head
    assert git(ff.settings.repo, "rev-list", "--parents", "-n", "1", "main").split()[1:] == [first_head, second_head]
    assert ff.tasks.store.events(second.id)[-1].payload["method"] == "merge commit"

    # A second merge of a merged PR is refused and logged.
    reason = refused(ff, first, "merge_pr", lambda: ff.gate.merge_pr(first.id, AGENT))
    assert reason == "the PR is already merged"
    assert ff.gate.pr(first.id).state == "merged"
    assert ff.tasks.verify(first.id).ok and ff.tasks.verify(second.id).ok


# -- 6. sending back and rejecting


def test_requesting_changes_sends_the_pr_back_to_the_agent_with_the_comment(green: ServerDeps) -> None:
    task = in_review(green)
    head = branch_head(green, task)
    pr = green.gate.request_changes(task.id, "please add a test for double()", CAROL)
    assert (pr.state, pr.task_state, pr.approved_head) == ("open", TaskState.NEEDS_CHANGES, None)
    decision = green.gate.pr(task.id).decisions[-1]
    assert (decision.action, decision.by, decision.comment, decision.on) == (
        "changes_requested", "human:carol", "please add a test for double()", head,
    )  # fmt: skip
    assert "no approval of the current head by a human reviewer" in pr.missing
    assert "no approval" in refused(green, task, "merge_pr", lambda: green.gate.merge_pr(task.id, AGENT))

    edit(green, task, TEST_DOUBLE)  # the agent answers with a new commit
    assert green.tasks.get(task.id).state == TaskState.CODING


def test_rejecting_a_pr_ends_the_task_and_removes_its_worktree(green: ServerDeps) -> None:
    task = in_review(green)
    head = branch_head(green, task)
    worktree = green.settings.state_path / "worktrees" / task.id
    assert worktree.is_dir()
    pr = green.gate.reject_pr(task.id, "we do not need double() after all", CAROL)
    assert (pr.state, pr.task_state) == ("closed", TaskState.REJECTED)
    assert (pr.decisions[-1].action, pr.decisions[-1].by, pr.decisions[-1].comment) == (
        "pr_rejected", "human:carol", "we do not need double() after all",
    )  # fmt: skip
    assert not worktree.exists(), "a rejected task's worktree is removed"
    assert branch_head(green, task) == head, "its branch keeps the commits"
    assert "return 2 * x" not in git(green.settings.repo, "show", "main:calc/arith.py")
    with pytest.raises(UserInputError, match="already ended"):
        green.gate.merge_pr(task.id, AGENT)
    assert green.tasks.verify(task.id).ok


def test_rejecting_a_plan_returns_to_planning_and_a_new_plan_can_be_proposed(green: ServerDeps) -> None:
    task = proposed(green)
    view = green.gate.reject_plan(task.id, "write the test first", CAROL)
    assert (view.status, view.task_state) == ("changes_requested", TaskState.PLANNING)
    assert (view.decisions[-1].action, view.decisions[-1].comment) == ("plan_rejected", "write the test first")

    view = green.gate.propose_plan(task.id, OTHER_PLAN, AGENT)
    assert (view.status, view.task_state, view.plan) == ("proposed", TaskState.PLAN_REVIEW, OTHER_PLAN)
    assert view.plan_sha256 == OTHER_PLAN.sha256() and [d.action for d in view.decisions] == ["plan_rejected"]
    assert green.gate.approve_plan(task.id, "better", CAROL).task_state == TaskState.CODING


@pytest.mark.parametrize(
    ("decide", "comment", "expected"),
    [
        ("request_changes", "", "a comment is required"),
        ("request_changes", "  \n ", "a comment is required"),
        ("reject_pr", "", "a comment is required"),
        ("reject_plan", "", "a comment is required"),
        ("request_changes", "x" * 10_001, "at most 10,000 characters"),
        ("reject_pr", "x" * 10_001, "at most 10,000 characters"),
        ("approve_pr", "x" * 10_001, "at most 10,000 characters"),
        ("approve_plan", "x" * 10_001, "at most 10,000 characters"),
        ("approve_pr", "nul \x00 byte", "plain text"),
    ],
)
def test_decisions_need_a_plain_bounded_comment_and_bad_ones_change_nothing(
    green: ServerDeps, decide: str, comment: str, expected: str
) -> None:
    task = proposed(green)
    before = green.tasks.get(task.id)
    with pytest.raises(UserInputError, match=expected) as error:
        getattr(green.gate, decide)(task.id, comment, CAROL)
    assert not isinstance(error.value, GateRefused)
    assert green.tasks.get(task.id) == before


# -- 7. opening a PR too early


@pytest.mark.anyio
async def test_a_pr_opens_only_from_tested_code_after_an_approved_plan(green: ServerDeps) -> None:
    task = green.tasks.start("Add a double() helper", BOB)
    async with Client(create_server(green)) as agent:
        none = PullRequest.model_validate(await call(agent, "get_pr", task_id=task.id))
        assert (none.state, none.ci, none.head_sha, none.missing) == ("none", "none", task.base_commit, [])
        early = await agent.call_tool("open_pr", {"task_id": task.id})
    assert early.is_error and "an approved plan comes first (propose_plan)" in early.content[0].text  # type: ignore[union-attr]

    green.gate.propose_plan(task.id, PLAN, AGENT)
    with pytest.raises(UserInputError, match=r"propose_plan"):
        green.gate.open_pr(task.id, AGENT)
    green.gate.approve_plan(task.id, "", CAROL)
    with pytest.raises(UserInputError, match=r"is coding; run_tests first"):
        green.gate.open_pr(task.id, AGENT)
    green.tests.run_task(task.id, "full", None, AGENT, baseline=False)
    with pytest.raises(UserInputError, match="has no commits yet; apply_edit first"):
        green.gate.open_pr(task.id, AGENT)
    assert [a for a, _ in actions(green, task)][-1] == "tests_run"
    assert green.gate.pr(task.id).state == "none"


# -- 8. toolsets


@pytest.mark.anyio
async def test_reviewer_only_tools_are_not_served_to_an_agent_session(green: ServerDeps) -> None:
    reviewer_only = {"approve_plan", "reject_plan", "approve_pr", "request_changes", "reject_pr"}
    task = proposed(green)
    async with Client(create_server(green)) as agent:
        listed = {tool.name for tool in (await agent.list_tools()).tools}
        assert listed.isdisjoint(reviewer_only)
        assert {"propose_plan", "open_pr", "get_pr", "merge_pr"} <= listed
        for tool in ("approve_plan", "approve_pr"):
            result = await agent.call_tool(tool, {"task_id": task.id, "comment": "self-approved"})
            assert result.is_error and result.content[0].text == f"Unknown tool: {tool}"  # type: ignore[union-attr]
    async with Client(create_server(green, toolset="reviewer")) as reviewer:
        assert reviewer_only <= {tool.name for tool in (await reviewer.list_tools()).tools}
        empty = await reviewer.call_tool("request_changes", {"task_id": task.id, "comment": ""})
        assert empty.is_error and "a comment is required" in empty.content[0].text  # type: ignore[union-attr]
    assert [a for a, _ in actions(green, task)] == ["created", "planning_started", "plan_proposed"]


# -- 9. the CLI


def test_the_cli_decides_as_the_named_person_and_reports_refusals(green: ServerDeps) -> None:
    repo = str(green.settings.repo)
    task = proposed(green)
    result = shipway("plan", "approve", task.id, "--as", "carol", "--comment", "ok", "--repo", repo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("plan      approved")
    assert green.tasks.store.events(task.id)[-1].actor == "human:carol"
    assert green.tasks.get(task.id).state == TaskState.CODING

    edit(green, task, ADD_DOUBLE)
    assert open_tested_pr(green, task).task_state == TaskState.REVIEW
    main = ref(green, "main")
    result = shipway("pr", "merge", task.id, "--repo", repo)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("shipway: error: merge_pr refused: no approval of the current head"), result.stderr
    assert green.tasks.store.events(task.id)[-1].action == "gate_refused"

    result = shipway("review", "approve", task.id, "--as", "carol", "--comment", "ok", "--repo", repo)
    assert result.returncode == 0, result.stderr
    event = green.tasks.store.events(task.id)[-1]
    assert (event.action, event.actor, event.payload["comment"]) == ("pr_approved", "human:carol", "ok")

    result = shipway("pr", "show", task.id, "--repo", repo, "--json")
    assert result.returncode == 0, result.stderr
    pr = PullRequest.model_validate(json.loads(result.stdout))
    assert (pr.task_state, pr.approved_head, pr.missing) == (TaskState.APPROVED, branch_head(green, task), [])
    assert pr.decisions[-1].by == "human:carol"
    assert ref(green, "main") == main

    result = shipway("pr", "merge", task.id, "--repo", repo, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "merged" and green.tasks.get(task.id).state == TaskState.MERGED


# -- bugs found


def test_open_pr_reaches_review_when_ci_already_ran_on_the_head(green: ServerDeps) -> None:
    task = coding(green)
    edit(green, task, ADD_DOUBLE)
    green.tests.run_task(task.id, "affected", None, AGENT, baseline=False)
    assert green.ci.status(task.id, wait_s=120).state == "success"  # the agent checked CI before opening the PR
    green.gate.open_pr(task.id, AGENT)
    green.ci.close()
    pr = green.gate.pr(task.id)
    assert (pr.ci, pr.task_state) == ("success", TaskState.REVIEW)


def test_approving_the_head_that_pr_show_printed_is_accepted(green: ServerDeps) -> None:
    repo = str(green.settings.repo)
    task = in_review(green)
    shown = shipway("pr", "show", task.id, "--repo", repo)
    match = re.search(r"^branch\s+\S+ @ ([0-9a-f]+) -> main$", shown.stdout, re.MULTILINE)
    assert match is not None, shown.stdout
    result = shipway("review", "approve", task.id, "--head", match.group(1), "--as", "carol", "--repo", repo)
    assert result.returncode == 0, result.stderr


def test_a_pr_sent_back_for_changes_can_still_be_rejected(green: ServerDeps) -> None:
    task = in_review(green)
    green.gate.request_changes(task.id, "please add a test for double()", CAROL)
    pr = green.gate.reject_pr(task.id, "never mind, we do not need it", CAROL)
    assert (pr.state, pr.task_state) == ("closed", TaskState.REJECTED)


def test_the_pr_body_links_the_tasks_preview_when_there_is_one(green: ServerDeps) -> None:
    task = coding(green)
    edit(green, task, ADD_DOUBLE)
    green.tasks.store.record(task.id, actor="system:preview", action="preview_started",
                             payload={"url": "http://127.0.0.1:9123/", "target": "local"})  # fmt: skip
    pr = open_tested_pr(green, task)
    assert "## Preview\n\nhttp://127.0.0.1:9123/" in (pr.body or "")
