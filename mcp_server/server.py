"""`create_server(deps)`: the MCP face of Shipway (mcp 2.x `MCPServer`).

Tool bodies stay thin: each one calls a service method and returns its pydantic model, which
becomes the tool's `structuredContent` and output schema. Errors the caller can fix come back
as `isError` results with an actionable message; anything else is masked here and logged in
full on the server.

Toolsets: `agent` (the default, what editors and Shipway's own agents get) and `reviewer`.
Every tool names the toolsets that serve it; tools that decide on a change (approve, request
changes, reject) are served to `reviewer` only, so an agent session cannot even see them.
`merge_pr` is served to both: it merges only what a human approved (mcp_server/review_gate.py).
"""

import functools
import getpass
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import Tool as MCPTool
from mcp_types import ToolAnnotations
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic import Field

from mcp_server import __version__
from mcp_server.app import ServerDeps
from mcp_server.ci import CIStatus, TaskCI
from mcp_server.config import Toolset
from mcp_server.elicit_review import ask_reviewer_tool
from mcp_server.errors import StoreError, UserInputError
from mcp_server.previews import PreviewService, PreviewStatus
from mcp_server.review_gate import PlanView, PullRequest, ReviewGate
from mcp_server.schema_trim import trim_schema
from mcp_server.tasks.model import Actor, Task, TaskState
from mcp_server.tasks.service import TaskLog, TaskPage, TaskService
from mcp_server.test_runs import TaskTests
from mcp_server.workspaces import TaskWorkspaces
from sandbox.base import ExecResult
from sandbox.errors import SandboxUnavailable, WorktreeError
from sandbox.host_git import GitError
from tools.edits.blocks import EditBlock
from tools.edits.report import EditReport
from tools.errors import ToolInputError
from tools.plan import Plan
from tools.preview.base import TargetName
from tools.search import (
    FileSlice,
    KnowledgeEntry,
    KnowledgeReport,
    RepoMapReport,
    RepoSearch,
    SearchKind,
    SearchReport,
)
from tools.task_edits import RevertReport, TaskDiff
from tools.testrun.report import Selection, TestReport

log = logging.getLogger(__name__)
tracer = trace.get_tracer("shipway.server")

INSTRUCTIONS = """\
Shipway turns a change request into a reviewed pull request, with every command sandboxed and \
every step logged. Begin with start_task; follow a task with get_task and get_task_log. \
Humans approve plans and merges; agents cannot."""

TaskId = Annotated[str, Field(description="Task id, or a unique prefix of 4+ characters", max_length=64)]

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Any]
    annotations: ToolAnnotations
    toolsets: frozenset[Toolset]


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CREATES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
BOTH: frozenset[Toolset] = frozenset({"agent", "reviewer"})
AGENT: frozenset[Toolset] = frozenset({"agent"})


def caller_errors(fn: _F) -> _F:
    """Turn errors the caller can act on into MCP tool errors; leave the rest to be masked."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(f"tool {fn.__name__}", set_status_on_exception=False) as span:
            span.set_attribute("gen_ai.tool.name", fn.__name__)
            if isinstance(kwargs.get("task_id"), str):
                span.set_attribute("shipway.task_id", kwargs["task_id"])
            try:
                return fn(*args, **kwargs)
            except (UserInputError, ToolInputError, SandboxUnavailable, WorktreeError, GitError) as exc:
                span.set_status(StatusCode.ERROR, type(exc).__name__)
                raise ToolError(str(exc)) from exc
            except StoreError as exc:
                log.exception("task store failure in %s", fn.__name__)
                span.set_status(StatusCode.ERROR, "StoreError")
                raise ToolError("the task store is busy or unavailable; try again in a moment") from exc

    return wrapper  # type: ignore[return-value]


def actor_for(toolset: Toolset) -> Actor:
    # Until reviewer identities arrive with the review gate, a reviewer session acts as the
    # person who started the server; an agent session is always an agent.
    return Actor(kind="agent", name="mcp-client") if toolset == "agent" else Actor(kind="human", name=getpass.getuser())


def task_tools(tasks: TaskService, actor: Actor) -> list[ToolSpec]:
    def start_task(
        request: Annotated[str, Field(description="What should change, in plain words")],
        repo: Annotated[str | None, Field(description="Absolute repository path; default: the served repo")] = None,
        autonomous: Annotated[bool, Field(description="Shipway's own agents do the work; default: you do")] = False,
    ) -> Task:
        """Start a task for a change request; returns the task and its id."""
        return tasks.start(request, actor, repo, autonomous)

    def list_tasks(
        state: TaskState | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> TaskPage:
        """List tasks, newest first, optionally only those in one state."""
        return tasks.page(state, limit, offset)

    def get_task(task_id: TaskId) -> Task:
        """Get one task: its request, state and base commit."""
        return tasks.get(task_id)

    def abort_task(
        task_id: TaskId,
        reason: Annotated[str, Field(description="Why the task is stopped")],
    ) -> Task:
        """Abort a live task for good; the reason is logged."""
        return tasks.abort(task_id, reason, actor)

    def get_task_log(
        task_id: TaskId,
        after_seq: Annotated[int, Field(ge=0, description="Return events after this one")] = 0,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
    ) -> TaskLog:
        """Get a task's audit log (who did what, when) and whether its hash chain verifies."""
        return tasks.log(task_id, after_seq, limit)

    return [
        ToolSpec(caller_errors(start_task), CREATES, BOTH),
        ToolSpec(caller_errors(list_tasks), READ_ONLY, BOTH),
        ToolSpec(caller_errors(get_task), READ_ONLY, BOTH),
        ToolSpec(caller_errors(abort_task), DESTRUCTIVE, BOTH),
        ToolSpec(caller_errors(get_task_log), READ_ONLY, BOTH),
    ]


class ShipwayServer(MCPServer):
    """MCPServer whose `tools/list` carries trimmed schemas (see schema_trim)."""

    async def list_tools(self) -> list[MCPTool]:
        return [
            tool.model_copy(
                update={
                    "input_schema": trim_schema(tool.input_schema),
                    "output_schema": trim_schema(tool.output_schema),
                }
            )
            for tool in await super().list_tools()
        ]


def sandbox_tools(workspaces: TaskWorkspaces, actor: Actor, default_timeout: float) -> list[ToolSpec]:
    def run_command(
        task_id: TaskId,
        command: Annotated[str, Field(description="Shell command, run with /bin/sh -c in the task's worktree")],
        timeout_s: Annotated[float, Field(gt=0, le=1800)] = default_timeout,
    ) -> ExecResult:
        """Run a shell command in the task's sandboxed worktree (no network); exit code and output."""
        return workspaces.run(task_id, command, timeout_s, actor)

    return [ToolSpec(caller_errors(run_command), DESTRUCTIVE, AGENT)]


def edit_tools(workspaces: TaskWorkspaces, actor: Actor) -> list[ToolSpec]:
    def apply_edit(
        task_id: TaskId,
        patch: Annotated[
            str | None, Field(description="Unified diff, or SEARCH/REPLACE blocks as text; line numbers optional")
        ] = None,
        blocks: Annotated[list[EditBlock] | None, Field(description="Structured edits instead of patch")] = None,
        dry_run: Annotated[bool, Field(description="Check and show the result without writing")] = False,
    ) -> EditReport:
        """Apply a diff or SEARCH/REPLACE edit to the task's worktree, all files or none; commits it."""
        report = workspaces.edit(task_id, actor, patch, blocks, dry_run)
        if report.status == "refused":
            raise ToolError(report.refusal())
        return report

    def show_diff(task_id: TaskId) -> TaskDiff:
        """The task's whole change so far: its branch against the base commit."""
        return workspaces.diff(task_id)

    def revert_edit(task_id: TaskId) -> RevertReport:
        """Undo the task's most recent edit."""
        return workspaces.revert(task_id, actor)

    return [
        ToolSpec(caller_errors(apply_edit), DESTRUCTIVE, AGENT),
        ToolSpec(caller_errors(show_diff), READ_ONLY, BOTH),
        ToolSpec(caller_errors(revert_edit), DESTRUCTIVE, AGENT),
    ]


def test_tools(tests: TaskTests, ci: TaskCI, actor: Actor) -> list[ToolSpec]:
    def run_tests(
        task_id: TaskId,
        selection: Annotated[
            Selection, Field(description="affected: tests reaching the changed files; full: all; paths: the given")
        ] = "affected",
        paths: Annotated[
            list[str] | None, Field(description="Test files, dirs or ids (tests/test_x.py::test_y) for paths")
        ] = None,
        baseline: Annotated[bool, Field(description="Also compare with the base commit (cached)")] = True,
    ) -> TestReport:
        """Run the task's tests in the sandbox: failures with file:line, and which ones the change caused."""
        return tests.run_task(task_id, selection, paths, actor, baseline)

    def get_test_report(run_id: Annotated[str, Field(description="From run_tests", max_length=64)]) -> TestReport:
        """A test run's report; its log_uri resource holds the full log."""
        return tests.report(run_id)

    def ci_status(
        task_id: TaskId,
        wait_s: Annotated[float, Field(ge=0, le=600, description="Seconds to wait for a running CI")] = 0,
    ) -> CIStatus:
        """CI on the task branch's head: starts it if needed; success, failure, error or pending."""
        return ci.status(task_id, wait_s)

    return [
        ToolSpec(caller_errors(run_tests), CREATES, BOTH),
        ToolSpec(caller_errors(get_test_report), READ_ONLY, BOTH),
        ToolSpec(caller_errors(ci_status), CREATES, BOTH),
    ]


def gate_tools(gate: ReviewGate, actor: Actor) -> list[ToolSpec]:
    def propose_plan(task_id: TaskId, plan: Plan) -> PlanView:
        """Propose the task's plan (goal, steps, files, tests, risks, acceptance) for a human to review."""
        return gate.propose_plan(task_id, plan, actor)

    def get_plan(task_id: TaskId) -> PlanView:
        """The task's newest plan, whether it is approved, and the reviewers' comments."""
        return gate.plan(task_id)

    def open_pr(
        task_id: TaskId,
        title: Annotated[str | None, Field(description="Default: the request's first line", max_length=200)] = None,
        body: Annotated[str | None, Field(description="Added above the generated summary", max_length=10_000)] = None,
    ) -> PullRequest:
        """Open the task's pull request from tested code and start CI; a human reviews it."""
        return gate.open_pr(task_id, actor, title, body)

    def get_pr(task_id: TaskId) -> PullRequest:
        """The task's pull request: head, approval, CI, conflicts, and what merging still needs."""
        return gate.pr(task_id)

    def merge_pr(task_id: TaskId) -> PullRequest:
        """Merge the PR; refused with reasons unless a human approved this head, CI is green and nothing conflicts."""
        return gate.merge_pr(task_id, actor)

    return [
        ToolSpec(caller_errors(propose_plan), CREATES, AGENT),
        ToolSpec(caller_errors(get_plan), READ_ONLY, BOTH),
        ToolSpec(caller_errors(open_pr), CREATES, AGENT),
        ToolSpec(caller_errors(get_pr), READ_ONLY, BOTH),
        ToolSpec(caller_errors(merge_pr), DESTRUCTIVE, BOTH),
    ]


Comment = Annotated[str, Field(description="What you decided and why; the agent reads it", max_length=10_000)]


def preview_tools(previews: PreviewService, actor: Actor) -> list[ToolSpec]:
    def deploy_preview(
        task_id: TaskId,
        target: Annotated[
            TargetName, Field(description="local: from the sandbox; s3: uploaded, may need approval")
        ] = "local",
    ) -> PreviewStatus:
        """Start a live preview of the task branch's head; returns its URL once it answers."""
        return previews.deploy(task_id, target, actor)

    def preview_status(task_id: TaskId) -> PreviewStatus:
        """The task's preview: state, URL, commit, expiry, and its log's tail."""
        return previews.status(task_id)

    def stop_preview(task_id: TaskId) -> PreviewStatus:
        """Stop the task's preview and remove what it deployed."""
        return previews.stop(task_id, actor)

    def approve_preview(
        task_id: TaskId,
        head_sha: Annotated[str | None, Field(description="The head you looked at; refused if moved")] = None,
    ) -> PreviewStatus:
        """Approve the preview an agent asked for (S3); it deploys the current head at once."""
        return previews.approve(task_id, actor, head_sha)

    return [
        ToolSpec(caller_errors(deploy_preview), CREATES, BOTH),
        ToolSpec(caller_errors(preview_status), READ_ONLY, BOTH),
        ToolSpec(caller_errors(stop_preview), DESTRUCTIVE, BOTH),
        ToolSpec(caller_errors(approve_preview), CREATES, frozenset({"reviewer"})),
    ]


def reviewer_tools(gate: ReviewGate, actor: Actor) -> list[ToolSpec]:
    def approve_plan(
        task_id: TaskId,
        comment: Comment = "",
        plan_sha256: Annotated[
            str | None, Field(description="The plan you read (get_plan); refused if changed")
        ] = None,
    ) -> PlanView:
        """Approve the task's plan: the agent may then write code, within the plan's files."""
        return gate.approve_plan(task_id, comment, actor, plan_sha256)

    def reject_plan(task_id: TaskId, comment: Comment) -> PlanView:
        """Send the plan back to the agent with what to change."""
        return gate.reject_plan(task_id, comment, actor)

    def approve_pr(
        task_id: TaskId,
        comment: Comment = "",
        head_sha: Annotated[str | None, Field(description="The head you reviewed (get_pr); refused if moved")] = None,
    ) -> PullRequest:
        """Approve the PR's current head; a later push voids the approval."""
        return gate.approve_pr(task_id, comment, actor, head_sha)

    def request_changes(task_id: TaskId, comment: Comment) -> PullRequest:
        """Ask the agent for changes to the PR."""
        return gate.request_changes(task_id, comment, actor)

    def reject_pr(task_id: TaskId, comment: Comment) -> PullRequest:
        """Reject the PR and end the task."""
        return gate.reject_pr(task_id, comment, actor)

    reviewer: frozenset[Toolset] = frozenset({"reviewer"})
    return [
        ToolSpec(caller_errors(approve_plan), CREATES, reviewer),
        ToolSpec(caller_errors(reject_plan), CREATES, reviewer),
        ToolSpec(caller_errors(approve_pr), CREATES, reviewer),
        ToolSpec(caller_errors(request_changes), CREATES, reviewer),
        ToolSpec(caller_errors(reject_pr), DESTRUCTIVE, reviewer),
    ]


def search_tools(search: RepoSearch, actor: Actor) -> list[ToolSpec]:
    def search_repo(
        query: Annotated[str, Field(description="What to find: words, identifiers, an error or a stack trace")],
        k: Annotated[int, Field(ge=1, le=100)] = 10,
        kind: SearchKind = "hybrid",
        path_glob: Annotated[str | None, Field(description="Only paths matching this glob, e.g. 'src/*.py'")] = None,
    ) -> SearchReport:
        """Find the code for a request: ranked files with line ranges, snippets and why each matched."""
        return search.search_repo(query, k, kind, path_glob)

    def read_file(
        path: Annotated[str, Field(description="Repo-relative path", max_length=1024)],
        start_line: Annotated[int, Field(ge=1)] = 1,
        end_line: Annotated[int | None, Field(ge=1)] = None,
    ) -> FileSlice:
        """Read lines of a file at the indexed commit (at most 400 lines per call)."""
        return search.read_file(path, start_line, end_line)

    def repo_map(budget_tokens: Annotated[int, Field(ge=100, le=20_000)] = 2_000) -> RepoMapReport:
        """Outline of the repo's classes and functions, most-used modules first, within a token budget."""
        return search.repo_map(budget_tokens)

    def search_knowledge(query: str, k: Annotated[int, Field(ge=1, le=50)] = 5) -> KnowledgeReport:
        """Search the repo's docs, README, ADRs and notes from earlier tasks; each with its source."""
        return search.search_knowledge(query, k)

    def add_knowledge(
        title: Annotated[str, Field(max_length=200)],
        text: Annotated[str, Field(max_length=20_000)],
        source: Annotated[str, Field(description="Where it comes from: a URL, PR or path", max_length=500)],
    ) -> KnowledgeEntry:
        """Save a note (decision, PR summary) for later search_knowledge calls."""
        return search.add_knowledge(title, text, source, f"{actor.kind}:{actor.name}")

    return [
        ToolSpec(caller_errors(search_repo), READ_ONLY, BOTH),
        ToolSpec(caller_errors(read_file), READ_ONLY, BOTH),
        ToolSpec(caller_errors(repo_map), READ_ONLY, BOTH),
        ToolSpec(caller_errors(search_knowledge), READ_ONLY, BOTH),
        ToolSpec(caller_errors(add_knowledge), CREATES, BOTH),
    ]


def create_server(deps: ServerDeps, toolset: Toolset | None = None, actor: Actor | None = None) -> MCPServer:
    """An MCPServer serving `toolset` (default: the one in settings) over `deps`, acting as `actor`.

    `actor` defaults to the toolset's (see actor_for); Shipway's own worker passes `agent:shipway`.
    """
    chosen = toolset or deps.settings.toolset
    server = ShipwayServer(
        "shipway",
        title="Shipway",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level=deps.settings.log_level,
    )
    if actor is None:
        actor = actor_for(chosen)
    elif chosen == "agent" and actor.kind != "agent":
        raise ValueError("the agent toolset acts as an agent")
    specs = (
        task_tools(deps.tasks, actor)
        + sandbox_tools(deps.workspaces, actor, deps.settings.command_timeout_s)
        + edit_tools(deps.workspaces, actor)
        + test_tools(deps.tests, deps.ci, actor)
        + gate_tools(deps.gate, actor)
        + reviewer_tools(deps.gate, actor)
        + search_tools(deps.search, actor)
        + preview_tools(deps.previews, actor)
    )
    if deps.settings.elicit_reviews:
        specs.append(ToolSpec(caller_errors(ask_reviewer_tool(deps.gate)), CREATES, AGENT))
    for spec in specs:
        if chosen in spec.toolsets:
            server.add_tool(spec.fn, annotations=spec.annotations, structured_output=True)

    add_resources(server, deps)
    return server


def add_resources(server: MCPServer, deps: ServerDeps) -> None:
    """Read-only resources: a task as JSON, a test run's log, a preview's log."""

    @server.resource("task://{task_id}", name="task", mime_type="application/json")
    def task_resource(task_id: str) -> str:
        """A task as JSON."""
        try:
            return deps.tasks.get(task_id).model_dump_json(indent=2)
        except UserInputError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    @server.resource("shipway://tasks/{task_id}/preview/log", name="preview_log", mime_type="text/plain")
    def preview_log_resource(task_id: str) -> str:
        """The log of the task's newest preview (build and server output)."""
        try:
            return deps.previews.log_text(deps.tasks.resolve_id(task_id))
        except UserInputError as exc:
            raise ResourceNotFoundError(str(exc)) from exc

    @server.resource("shipway://test-runs/{run_id}/log", name="test_log", mime_type="text/plain")
    def test_log_resource(run_id: str) -> str:
        """The full log of a test run."""
        try:
            return deps.tests.log_text(run_id)
        except ToolInputError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
