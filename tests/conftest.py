from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.tasks.model import Actor
from mcp_server.tasks.service import TaskService
from tests.helpers.gitrepo import init_repo

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_shipway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the SHIPWAY_* variables they need; none leak in from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("SHIPWAY_"):
            monkeypatch.delenv(name)
    # Loading the embedding model costs seconds of CPU per server; tests that need it opt in.
    monkeypatch.setenv("SHIPWAY_EMBEDDER", "none")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


@pytest.fixture
def deps(repo: Path) -> Iterator[ServerDeps]:
    built = open_deps(load_settings(repo=repo))
    yield built
    built.tasks.store.close()


@pytest.fixture
def service(deps: ServerDeps) -> TaskService:
    return deps.tasks


@pytest.fixture
def alice() -> Actor:
    return Actor(kind="human", name="alice")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto server on 127.0.0.1 for the whole session (AWS over real HTTP)."""
    from tests.helpers.moto_server import moto_server

    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty moto server and fake credentials in the environment; returns the endpoint URL."""
    from tests.helpers.moto_server import FAKE_CREDENTIALS, reset

    reset(moto_endpoint)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint
