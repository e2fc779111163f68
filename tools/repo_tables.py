"""Reading one table of a repository's `shipway.toml` (`[test]`, `[preview]`) into its model."""

from __future__ import annotations

import tomllib
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from tools.errors import ToolInputError

M = TypeVar("M", bound=BaseModel)


def read_table(text: str | None, name: str, model: type[M]) -> M:
    """The `[name]` table of a shipway.toml's text as `model` (its defaults without one), or ToolInputError."""
    if not text:
        return model()
    try:
        table = tomllib.loads(text).get(name, {})
    except tomllib.TOMLDecodeError as exc:
        raise ToolInputError(f"shipway.toml is not valid TOML: {exc}") from exc
    if not isinstance(table, dict):
        raise ToolInputError(f"shipway.toml: `{name}` must be a table ([{name}])")
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ToolInputError(f"shipway.toml [{name}]: {problems}") from exc
