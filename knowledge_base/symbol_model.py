"""The one record every symbol extractor (Python `ast`, tree-sitter) produces, so the index stores them alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Symbol:
    """A definition or a reference found in one source file.

    `kind` is one of: class, function, method, interface, struct, enum, trait, type, module,
    constant, variable, reference. Lines are 1-based; a reference spans one line.
    """

    name: str  # identifier as written, e.g. "parseConfig"
    kind: str
    line: int  # first line
    end_line: int  # last line (== line for references)
    is_definition: bool
    parent: str | None = None  # enclosing class/struct/impl/interface name for methods, else None
