"""The five rooms import from this repository, and respect the design's import rules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ROOMS = ["mcp_server", "agents", "tools", "knowledge_base", "sandbox"]

# Which of our own rooms each room may import (../shared/DESIGN.md, "Rooms").
MAY_IMPORT = {
    "mcp_server": set(ROOMS),
    "agents": {"agents"},
    "tools": {"tools", "knowledge_base", "sandbox"},
    "knowledge_base": {"knowledge_base"},
    "sandbox": {"sandbox"},
}


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_from_this_repository_not_a_shadowing_package(room: str) -> None:
    module = importlib.import_module(room)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve() == REPO_ROOT / room / "__init__.py"


def _our_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_only_import_the_rooms_the_design_allows(room: str) -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(bad)
        for path in (REPO_ROOT / room).rglob("*.py")
        if (bad := _our_imports(path) - MAY_IMPORT[room])
    }
    assert offenders == {}
