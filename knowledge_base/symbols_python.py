"""Python definitions and references from the standard library's `ast`.

Definitions: classes, functions, methods (with their class as parent), module-level
constants and assignments. References: names that are called, read as attributes or used as
bases and annotations. A file that does not parse yields no symbols; its text is still
indexed lexically.
"""

from __future__ import annotations

import ast
import warnings

from knowledge_base.symbol_model import Symbol

_MAX_DEPTH = 200  # the walk below uses an explicit stack, this only bounds pathological nesting


def extract_python_symbols(source: str) -> list[Symbol]:
    try:
        with warnings.catch_warnings():
            # Old code trips SyntaxWarning (invalid escapes); it is the repo's problem, not ours.
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found: dict[tuple[str, int, bool], Symbol] = {}
    stack: list[tuple[ast.AST, str | None, int]] = [(tree, None, 0)]
    while stack:
        node, parent, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        symbol = _definition(node, parent) or _reference(node)
        if symbol is not None:
            found.setdefault((symbol.name, symbol.line, symbol.is_definition), symbol)
        inner_parent = node.name if isinstance(node, ast.ClassDef) else parent
        stack.extend((child, inner_parent, depth + 1) for child in ast.iter_child_nodes(node))
    defined = {(s.name, s.line) for s in found.values() if s.is_definition}
    symbols = [s for s in found.values() if s.is_definition or (s.name, s.line) not in defined]
    return sorted(symbols, key=lambda s: (s.line, s.name, not s.is_definition))


def _definition(node: ast.AST, parent: str | None) -> Symbol | None:
    end = getattr(node, "end_lineno", None)
    if isinstance(node, ast.ClassDef):
        return Symbol(node.name, "class", node.lineno, end or node.lineno, True, parent)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        kind = "method" if parent else "function"
        return Symbol(node.name, kind, node.lineno, end or node.lineno, True, parent)
    if isinstance(node, ast.Assign | ast.AnnAssign) and parent is None and node.col_offset == 0:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if names:
            kind = "constant" if names[0].isupper() else "variable"
            return Symbol(names[0], kind, node.lineno, end or node.lineno, True, None)
    return None


def _reference(node: ast.AST) -> Symbol | None:
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name:
            return Symbol(name, "reference", node.lineno, node.lineno, False)
    elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        return Symbol(node.attr, "reference", node.lineno, node.lineno, False)
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and not node.id.islower():
        # Capitalised and CONSTANT names read as values are types and settings worth finding;
        # lower-case locals are too many and too generic to index.
        return Symbol(node.id, "reference", node.lineno, node.lineno, False)
    return None
