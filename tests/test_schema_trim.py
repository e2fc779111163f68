"""Trimmed tool schemas accept exactly what the originals accept, in fewer tokens."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from mcp_server.schema_trim import trim_schema
from mcp_server.tasks.model import Task
from mcp_server.tasks.service import TaskLog, TaskPage


class Node(BaseModel):
    name: str
    children: list[Node] = []


def test_generated_titles_go_but_a_property_named_title_stays() -> None:
    trimmed = trim_schema(Task.model_json_schema())
    assert "title" not in trimmed and "title" in trimmed["properties"]
    assert "title" not in trimmed["properties"]["id"]


def test_simple_nullables_become_a_type_list() -> None:
    trimmed = trim_schema(Task.model_json_schema())
    assert trimmed["properties"]["base_branch"]["type"] == ["string", "null"]


def test_references_are_inlined_for_non_recursive_models() -> None:
    trimmed = trim_schema(TaskLog.model_json_schema())
    assert "$defs" not in trimmed and "$ref" not in str(trimmed)


def test_recursive_models_keep_their_definitions() -> None:
    original = Node.model_json_schema()
    trimmed = trim_schema(original)
    assert "$ref" in str(trimmed) and ("$defs" in trimmed) == ("$defs" in original)


SAMPLES: list[tuple[type[BaseModel], dict[str, Any], bool]] = [
    (TaskPage, {"tasks": [], "total": 0, "offset": 0}, True),
    (TaskPage, {"tasks": [{"id": "a"}], "total": 0, "offset": 0}, False),
    (
        TaskLog,
        {"task_id": "a", "events": [], "total": 0, "chain": {"task_id": "a", "ok": True, "events_checked": 0}},
        True,
    ),
    (TaskLog, {"task_id": "a", "events": [{"seq": 1}], "total": 0, "chain": {}}, False),
]


@pytest.mark.parametrize(("model", "instance", "valid"), SAMPLES)
def test_trimmed_and_original_schemas_agree(model: type[BaseModel], instance: dict[str, Any], valid: bool) -> None:
    for schema in (model.model_json_schema(), trim_schema(model.model_json_schema())):
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(instance))
        assert (not errors) == valid
