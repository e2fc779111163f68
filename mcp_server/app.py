"""Wiring: from settings to a ready service, with state kept in `.shipway/` out of git."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcp_server.agent_dispatch import AgentDispatch
from mcp_server.agent_queue import AgentQueue, SqliteAgentQueue
from mcp_server.artifacts import open_artifacts
from mcp_server.ci import ForgeCI, LocalCI, TaskCI
from mcp_server.config import Settings, ensure_state_dir
from mcp_server.previews import PreviewService
from mcp_server.review_gate import ReviewGate
from mcp_server.sqs_queue import SqsAgentQueue
from mcp_server.tasks.base import TaskStore
from mcp_server.tasks.dynamo_store import DynamoTaskStore
from mcp_server.tasks.model import Task
from mcp_server.tasks.service import TaskService
from mcp_server.tasks.sqlite_store import SqliteTaskStore
from mcp_server.test_runs import TaskTests
from mcp_server.transcripts import LocalTranscripts, S3Transcripts, Transcripts
from mcp_server.workspaces import TaskWorkspaces, local_repo
from tools.forge.base import Forge
from tools.forge.github import GitHubForge
from tools.forge.local import LocalForge
from tools.search import RepoSearch, choose_embedder

STORE_FILE = "tasks.db"
QUEUE_FILE = "agent-queue.db"
INDEX_DIR = "index"


@dataclass(frozen=True)
class ServerDeps:
    """Everything a front end (MCP server, HTTP app, CLI) needs, built once from settings."""

    settings: Settings
    tasks: TaskService
    workspaces: TaskWorkspaces
    search: RepoSearch
    tests: TaskTests
    ci: TaskCI
    gate: ReviewGate
    queue: AgentQueue
    dispatch: AgentDispatch
    previews: PreviewService


def open_store(settings: Settings) -> TaskStore:
    """The configured task store: SQLite under the state directory, or DynamoDB (`SHIPWAY_STORE=aws`)."""
    if settings.store == "aws":
        return DynamoTaskStore(settings.aws_table_prefix, settings.aws_endpoint_url, settings.aws_region)
    return SqliteTaskStore(ensure_state_dir(settings.state_path) / STORE_FILE)


def open_queue(settings: Settings) -> AgentQueue:
    """The agent work queue: SQLite beside the store, or SQS with DynamoDB leases (`SHIPWAY_STORE=aws`)."""
    if settings.store == "aws":
        return SqsAgentQueue(settings.aws_table_prefix, settings.aws_endpoint_url, settings.aws_region,
                             settings.aws_max_receives)  # fmt: skip
    return SqliteAgentQueue(ensure_state_dir(settings.state_path) / QUEUE_FILE)


def open_transcripts(settings: Settings) -> Transcripts:
    """Agent transcripts: in S3 when a team shares a bucket (`SHIPWAY_AWS_ARTIFACTS_BUCKET`), else local files."""
    artifacts = open_artifacts(settings)
    return S3Transcripts(artifacts) if artifacts else LocalTranscripts(settings.state_path)


def open_task_service(settings: Settings) -> TaskService:
    """The task store and its service alone (for helper processes such as a preview's supervisor)."""
    ensure_state_dir(settings.state_path)
    return TaskService(open_store(settings), settings)


def open_deps(settings: Settings) -> ServerDeps:
    tasks = open_task_service(settings)
    workspaces = TaskWorkspaces(tasks, settings)
    tests = TaskTests(workspaces, settings)
    forge_for = forges(settings)
    ci = TaskCI(LocalCI(tests), ForgeCI(tests, forge_for), settings, forge_for)
    queue = open_queue(settings)
    dispatch = AgentDispatch(settings, queue)
    tasks.on_move.append(dispatch.wake)
    ci.listen(lambda task_id, green: None if green else dispatch.wake(tasks.get(task_id)))
    gate = ReviewGate(tasks, workspaces, ci, settings, forge_for=forge_for)
    return ServerDeps(
        settings=settings,
        tasks=tasks,
        workspaces=workspaces,
        search=open_search(settings),
        tests=tests,
        ci=ci,
        gate=gate,
        queue=queue,
        dispatch=dispatch,
        previews=PreviewService(tasks, workspaces, gate, settings),
    )


def forges(settings: Settings) -> Callable[[Task], Forge]:
    """Which forge holds a task's PR: GitHub for the served repo when configured, else the repo itself."""
    github: GitHubForge | None = None
    if settings.forge == "github":
        assert settings.github_repo is not None and settings.github_token is not None  # Settings checked both
        github = GitHubForge(settings.repo, settings.github_repo, settings.github_token.get_secret_value(),
                             settings.github_api_url, settings.github_git_url)  # fmt: skip

    def forge_for(task: Task) -> Forge:
        repo = local_repo(task, settings)
        if github is not None and repo == settings.repo:
            return github
        return LocalForge(repo, settings.merge_method)

    return forge_for


def open_search(settings: Settings) -> RepoSearch:
    key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
    embedder, problem = choose_embedder(settings.embedder, settings.embeddings_url, settings.embeddings_model, key)
    return RepoSearch(settings.repo, ensure_state_dir(settings.state_path) / INDEX_DIR, embedder, problem)
