"""Trim JSON Schemas for `tools/list` without changing what they accept.

Pydantic's schemas are verbose: a `title` on every field ("Task Id" for `task_id`), and
`anyOf: [{type: string}, {type: null}]` for every optional value. Both cost tokens in every
client that lists our tools. We drop the titles (only the keyword; a property *named*
`title` stays) and write simple nullable types as `type: [T, "null"]`, which accepts exactly
the same values. The server still validates arguments against the untrimmed schema.

We also inline `$ref`s to `$defs` (our models are not recursive; a recursive one is left
as it is). Clients validate every structured result against the listed output schema, and
with the jsonschema library that most Python clients use, resolving references was about
90% of that time (6 ms for a 20-task page); inlined, the same check is a fraction of it.
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


def _inline_refs(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Any:
    if isinstance(node, list):
        return [_inline_refs(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in defs and name not in seen:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline_refs(defs[name], defs, seen | {name}), **siblings}
        raise _Recursive
    return {key: _inline_refs(value, defs, seen) for key, value in node.items()}


class _Recursive(Exception):
    """The schema refers to itself; it is listed with its `$defs` kept."""


def inline_defs(schema: Any) -> Any:
    if not isinstance(schema, dict) or "$defs" not in schema:
        return schema
    defs = schema["$defs"]
    try:
        return _inline_refs({k: v for k, v in schema.items() if k != "$defs"}, defs, frozenset())
    except _Recursive:
        return schema


def trim_schema(schema: Any) -> Any:
    """Titles dropped, nullables shortened and references inlined; accepts the same values."""
    return _trim(inline_defs(schema))


def _trim(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    trimmed: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "anyOf" and isinstance(value, list) and (single := _simple_nullable(value)):
            trimmed["type"] = [single, "null"]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            trimmed[key] = {name: _trim(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            trimmed[key] = [_trim(sub) for sub in value]
        elif key in _SCHEMA_VALUES:
            trimmed[key] = _trim(value)
        else:
            trimmed[key] = value
    return trimmed
