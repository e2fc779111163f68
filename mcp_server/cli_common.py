"""Pieces every `shipway` command group shares: options, the acting person, deps, output."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.tasks.model import Actor

repo_option = click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Target git repository (default: $SHIPWAY_REPO or the current directory).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def person(name: str | None = None) -> Actor:
    """The person at the terminal: `name` (from --as) or the logged-in user."""
    return Actor(kind="human", name=(name or getpass.getuser()).strip() or "unknown")


def cli_actor() -> Actor:
    return person()


def deps_for(repo: Path | None) -> ServerDeps:
    return open_deps(load_settings(repo=repo))


def emit(value: BaseModel, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(value.model_dump_json(indent=2) if as_json else text(value))
