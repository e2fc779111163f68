"""Wiring: from settings to a ready service, with state kept in `.shipway/` out of git."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp_server.ci import LocalCI
from mcp_server.config import Settings
from mcp_server.review_gate import ReviewGate
from mcp_server.tasks.model import Task
from mcp_server.tasks.service import TaskService
from mcp_server.tasks.sqlite_store import SqliteTaskStore
from mcp_server.test_runs import TaskTests
from mcp_server.workspaces import TaskWorkspaces
from tools.forge.base import Forge
from tools.forge.local import LocalForge
from tools.search import RepoSearch, choose_embedder

STORE_FILE = "tasks.db"
INDEX_DIR = "index"


@dataclass(frozen=True)
class ServerDeps:
    """Everything a front end (MCP server, HTTP app, CLI) needs, built once from settings."""

    settings: Settings
    tasks: TaskService
    workspaces: TaskWorkspaces
    search: RepoSearch
    tests: TaskTests
    ci: LocalCI
    gate: ReviewGate


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory; a `.gitignore` of `*` keeps all of it out of git."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Shipway's local state: never commit it.\n*\n", encoding="utf-8")
    return path


def open_deps(settings: Settings) -> ServerDeps:
    state = ensure_state_dir(settings.state_path)
    tasks = TaskService(SqliteTaskStore(state / STORE_FILE), settings)
    workspaces = TaskWorkspaces(tasks, settings)
    tests = TaskTests(workspaces, settings)
    ci = LocalCI(tests)
    return ServerDeps(
        settings=settings,
        tasks=tasks,
        workspaces=workspaces,
        search=open_search(settings),
        tests=tests,
        ci=ci,
        gate=ReviewGate(tasks, workspaces, ci, settings, forge_for=lambda task: local_forge(task, settings)),
    )


def local_forge(task: Task, settings: Settings) -> Forge:
    return LocalForge(Path(task.repo), settings.merge_method)


def open_search(settings: Settings) -> RepoSearch:
    key = settings.embeddings_api_key.get_secret_value() if settings.embeddings_api_key else None
    embedder, problem = choose_embedder(settings.embedder, settings.embeddings_url, settings.embeddings_model, key)
    return RepoSearch(settings.repo, ensure_state_dir(settings.state_path) / INDEX_DIR, embedder, problem)
