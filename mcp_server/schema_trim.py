"""Trim JSON Schemas for `tools/list` without changing what they accept.

Pydantic's schemas are verbose: a `title` on every field ("Task Id" for `task_id`), and
`anyOf: [{type: string}, {type: null}]` for every optional value. Both cost tokens in every
client that lists our tools. We drop the titles (only the keyword; a property *named*
`title` stays) and write simple nullable types as `type: [T, "null"]`, which accepts exactly
the same values. The server still validates arguments against the untrimmed schema.
"""

from __future__ import annotations

from typing import Any

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")


def _simple_nullable(options: list[Any]) -> str | None:
    """The T of `anyOf: [{type: T}, {type: null}]` when both branches are bare types."""
    if len(options) != 2 or not all(isinstance(o, dict) and set(o) == {"type"} for o in options):
        return None
    types = [o["type"] for o in options]
    if "null" not in types or not all(isinstance(t, str) for t in types):
        return None
    return next((t for t in types if t != "null"), None)


def trim_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    trimmed: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "anyOf" and isinstance(value, list) and (single := _simple_nullable(value)):
            trimmed["type"] = [single, "null"]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            trimmed[key] = {name: trim_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            trimmed[key] = [trim_schema(sub) for sub in value]
        elif key in _SCHEMA_VALUES:
            trimmed[key] = trim_schema(value)
        else:
            trimmed[key] = value
    return trimmed
