"""Definitions and references for JavaScript, TypeScript/TSX, Go, Java and Rust, via tree-sitter.

The grammar wheels ship the standard `queries/tags.scm` (captures `@definition.*`, `@reference.*`,
`@name`); we load those and add a few patterns of our own for what they miss (TS type aliases and
enums, Java enums and records, Rust `Foo::new()` calls and trait signatures, type references).
The kind is then derived from the definition node's type rather than the tag's label, because the
tags are coarse (a Rust struct is tagged `definition.class`, a Go struct `definition.type`).

Tree-sitter is error-tolerant, so a file with syntax errors still yields what parsed. All tree
walking happens in C (queries) or in loops with a fixed bound; nothing recurses in Python.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from collections.abc import Container
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePath

from tree_sitter import Language, Node, Parser, Point, Query, QueryCursor, QueryError, Tree

from knowledge_base.symbol_model import Symbol

_log = logging.getLogger(__name__)

TREE_SITTER_LANGUAGES: dict[str, str] = {
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".java": "java",
    ".rs": "rust",
}

# Patterns the shipped tags.scm files lack. Kept per grammar: a node type unknown to a grammar is a
# QueryError, so e.g. JSX patterns must not reach the plain TypeScript grammar.
_JS_EXTRA = """
(method_definition name: (private_property_identifier) @name) @definition.method
(field_definition
  property: (property_identifier) @name value: [(arrow_function) (function_expression)]) @definition.method
(class_heritage (identifier) @name) @reference.class
"""
_JSX_EXTRA = """
(jsx_opening_element name: (identifier) @name) @reference.jsx
(jsx_self_closing_element name: (identifier) @name) @reference.jsx
"""
_TS_EXTRA = """
(method_definition name: (private_property_identifier) @name) @definition.method
(public_field_definition
  name: (property_identifier) @name value: [(arrow_function) (function_expression)]) @definition.method
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(internal_module name: (_) @name) @definition.module
(extends_clause value: (identifier) @name) @reference.class
(type_identifier) @name @reference.type
"""
_GO_EXTRA = """
(type_alias name: (type_identifier) @name) @definition.type
(method_elem name: (field_identifier) @name) @definition.method
(source_file (const_declaration (const_spec name: (identifier) @name) @definition.constant))
(source_file (var_declaration (var_spec name: (identifier) @name) @definition.variable))
"""
_JAVA_EXTRA = """
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration name: (identifier) @name) @definition.class
(annotation_type_declaration name: (identifier) @name) @definition.interface
(type_identifier) @name @reference.type
"""
_RUST_EXTRA = """
(function_signature_item name: (identifier) @name) @definition.method
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.constant
(call_expression function: (scoped_identifier name: (identifier) @name)) @reference.call
(type_identifier) @name @reference.type
"""


@dataclass(frozen=True, slots=True)
class _Grammar:
    module: str  # grammar wheel's import name
    factory: str  # its function returning the TSLanguage pointer
    tag_packages: tuple[str, ...]  # packages whose queries/tags.scm apply to this grammar
    extra: str


_JS_TAGS = ("tree_sitter_javascript",)
_TS_TAGS = ("tree_sitter_javascript", "tree_sitter_typescript")  # TS's tags.scm only adds to JavaScript's
_GRAMMARS: dict[str, _Grammar] = {
    "javascript": _Grammar("tree_sitter_javascript", "language", _JS_TAGS, _JS_EXTRA + _JSX_EXTRA),
    "typescript": _Grammar("tree_sitter_typescript", "language_typescript", _TS_TAGS, _TS_EXTRA),
    "tsx": _Grammar("tree_sitter_typescript", "language_tsx", _TS_TAGS, _TS_EXTRA + _JSX_EXTRA),
    "go": _Grammar("tree_sitter_go", "language", ("tree_sitter_go",), _GO_EXTRA),
    "java": _Grammar("tree_sitter_java", "language", ("tree_sitter_java",), _JAVA_EXTRA),
    "rust": _Grammar("tree_sitter_rust", "language", ("tree_sitter_rust",), _RUST_EXTRA),
}

# The kind comes from the definition node's type. Notes: `variable_declarator`, `pair` and `assignment_expression`
# are only tagged when their value is a function; `method_declaration` is Java's and Go's, `method_elem` a Go
# interface method; Rust has no macro kind, and a macro is called like a function.
_KIND_TABLE = """
class: class class_declaration abstract_class_declaration record_declaration
function: function_declaration function_expression generator_function generator_function_declaration
function: function_signature variable_declarator assignment_expression pair macro_definition
method: method_definition method_signature abstract_method_signature field_definition public_field_definition
method: method_declaration method_elem function_signature_item
interface: interface_declaration annotation_type_declaration
struct: struct_item union_item
enum: enum_declaration enum_item
trait: trait_item
type: type_alias_declaration type_alias type_item
module: module internal_module mod_item
constant: export_statement const_spec const_item static_item
variable: var_spec
"""
_KIND_BY_NODE_TYPE = {
    node_type: kind.strip()
    for kind, _, node_types in (row.partition(":") for row in _KIND_TABLE.strip().splitlines())
    for node_type in node_types.split()
}
_GO_TYPE_KINDS = {"struct_type": "struct", "interface_type": "interface"}

# Declarations that own methods (Go's type_spec: `type Shape interface { Area() float64 }`).
_CONTAINERS = frozenset(
    {t for t, kind in _KIND_BY_NODE_TYPE.items() if kind == "class"}
    | {"interface_declaration", "enum_declaration", "trait_item", "type_spec"}
)
_CONTAINER_DEPTH = 3  # method -> body -> (enum body ->) declaration; deeper means a nested scope
# A real 1.4 MB bundle parses in 0.5 s; 1 MB of random code-like characters takes 11 s.
_PARSE_BUDGET_SECONDS = 5.0
_READ_CHUNK = 64 * 1024
# Patterns start matching only this deep. Unbounded, in-progress matches pile up along very deep trees
# (a 10,000-call `.then()` chain took 5 s); the deepest of 8,000 real JS/TS files was 420.
_MAX_START_DEPTH = 1000
# ERROR nodes wider than this are queried child by child, see _query_roots; real files stay far below.
_WIDE_ERROR_NODE = 256
_TYPE_SEARCH_LIMIT = 64  # nodes visited looking for the type name of a Go receiver / Rust impl

# Builtins that are references by syntax but can never resolve to a symbol in the repository.
_IGNORED_REFERENCES: dict[str, frozenset[str]] = {
    "go": frozenset(
        {
            *("bool", "byte", "complex64", "complex128", "error", "float32", "float64", "int", "int8", "int16"),
            *("int32", "int64", "rune", "string", "uint", "uint8", "uint16", "uint32", "uint64", "uintptr"),
            *("any", "comparable", "append", "cap", "clear", "close", "complex", "copy", "delete", "imag"),
            *("len", "make", "max", "min", "new", "panic", "print", "println", "real", "recover"),
        }
    ),
    "rust": frozenset({"Self"}),
    # The shipped tags exclude these with a predicate, which we strip (see _PREDICATE).
    "javascript": frozenset({"require"}),
    "typescript": frozenset({"require"}),
    "tsx": frozenset({"require"}),
}

# Text predicates such as (#not-match? @name "^(require)$") make py-tree-sitter fetch node text through the read
# callback of a deadline-bounded parse, one call per evaluation (3x slower on a big bundle; 0.26.1 segfaults if
# that callback returns anything but bytes). We remove them from the queries. Of the JavaScript tags' two, the
# `require` exclusion lives in _IGNORED_REFERENCES; the other hid `constructor`, which we keep as a method.
_PREDICATE = re.compile(r'\(#[\w-]+[?!](?:\s+(?:@[\w.-]+|"(?:[^"\\]|\\.)*"))*\s*\)')


@dataclass(frozen=True, slots=True)
class _Compiled:
    language: Language
    queries: tuple[Query, ...]


_compiled_cache: dict[str, _Compiled] = {}
_compile_lock = threading.Lock()


def language_for_path(path: str) -> str | None:
    return TREE_SITTER_LANGUAGES.get(PurePath(path).suffix.lower())


def extract_symbols(language: str, source: bytes) -> list[Symbol]:
    """Definitions and references in `source`, sorted by (line, name). Raises ValueError for an unknown language."""
    compiled = _compiled(language)
    tree = _parse(compiled.language, source)
    if tree is None:
        return []
    roots = _query_roots(tree.root_node)
    definitions: dict[int, tuple[Node, Node]] = {}  # name node's start byte -> (definition node, name node)
    references: list[Node] = []
    for query in compiled.queries:
        cursor = QueryCursor(query)
        cursor.set_max_start_depth(_MAX_START_DEPTH)
        for node in roots:
            for _, captures in cursor.matches(node):
                _collect(captures, definitions, references, source)
    symbols = [_definition_symbol(node, name, source) for node, name in definitions.values()]
    ignored = _IGNORED_REFERENCES.get(language, frozenset())
    symbols += _reference_symbols(references, definitions.keys(), ignored, source)
    return sorted(symbols, key=lambda s: (s.line, s.name, not s.is_definition))


def _parse(language: Language, source: bytes) -> Tree | None:
    """The syntax tree, or None if parsing ran over budget (only garbage does: error recovery is superlinear)."""
    deadline = time.monotonic() + _PARSE_BUDGET_SECONDS

    def read(offset: int, _point: Point) -> bytes:
        return source[offset : offset + _READ_CHUNK]  # bytes, not a memoryview: see _PREDICATE

    def over_budget(_offset: int, _has_error: bool) -> bool:
        return time.monotonic() > deadline

    try:
        # A Parser is not thread-safe but costs under a microsecond to create, so each call gets its own.
        return Parser(language).parse(read, progress_callback=over_budget)
    except ValueError:  # "Parsing failed": over_budget cancelled it
        _log.info("tree-sitter: gave up parsing %d bytes after %.1f s", len(source), _PARSE_BUDGET_SECONDS)
        return None


def _query_roots(root: Node) -> list[Node]:
    """The subtrees to run the queries on: normally just the root.

    Tree-sitter's query cursor is quadratic in the width of an ERROR node made of unmatched openers
    (`[[[[...`: 1.5 s for 30 KB, minutes for 1 MB). Around such nodes we query every child on its own.
    """
    if not root.has_error:
        return [root]
    split = _with_ancestors(_wide_error_nodes(root))
    if not split:
        return [root]
    roots: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node in split:
            stack.extend(child for child in node.children if child.is_named or child.child_count)
        else:
            roots.append(node)
    return roots


def _wide_error_nodes(root: Node) -> list[Node]:
    # Only subtrees that contain an error are entered, so a file with one typo costs a walk down one path.
    wide: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        children = node.children
        if node.is_error and len(children) > _WIDE_ERROR_NODE:
            wide.append(node)
        stack.extend(child for child in children if child.has_error)
    return wide


def _with_ancestors(nodes: list[Node]) -> set[Node]:
    found: set[Node] = set()
    for node in nodes:
        current: Node | None = node
        while current is not None and current not in found:
            found.add(current)
            current = current.parent
    return found


def _collect(
    captures: dict[str, list[Node]], definitions: dict[int, tuple[Node, Node]], references: list[Node], source: bytes
) -> None:
    names = captures.get("name")
    if not names:
        return
    for role, nodes in captures.items():
        if role.startswith("definition.") and nodes:
            definitions.setdefault(names[0].start_byte, (nodes[0], names[0]))
        elif role == "reference.jsx" and source[names[0].start_byte : names[0].start_byte + 1].islower():
            continue  # <div> is markup, <Button> a component: JSX's own rule (lower case means intrinsic)
        elif role.startswith("reference."):
            references.append(names[0])


def _definition_symbol(node: Node, name: Node, source: bytes) -> Symbol:
    kind = _kind(node)
    parent = _parent_name(node, source) if kind == "method" else None
    return Symbol(_text(name, source), kind, node.start_point.row + 1, node.end_point.row + 1, True, parent)


def _kind(node: Node) -> str:
    if node.type == "function_item":  # Rust: a method iff it sits in an impl or trait body
        body = node.parent
        owner = body.parent if body is not None else None
        return "method" if owner is not None and owner.type in {"impl_item", "trait_item"} else "function"
    if node.type == "type_spec":  # Go: `type X struct {...}` / `type X interface {...}` / `type X int`
        type_node = node.child_by_field_name("type")
        return _GO_TYPE_KINDS.get(type_node.type, "type") if type_node is not None else "type"
    return _KIND_BY_NODE_TYPE.get(node.type, "function")


def _parent_name(node: Node, source: bytes) -> str | None:
    if node.type == "method_declaration" and (receiver := node.child_by_field_name("receiver")) is not None:
        return _first_type_identifier(receiver, source)  # Go: func (p *Point) Move()
    ancestor = node.parent
    for _ in range(_CONTAINER_DEPTH):
        if ancestor is None:
            return None
        if ancestor.type == "impl_item":  # Rust: impl Foo / impl Trait for Foo -> Foo
            type_node = ancestor.child_by_field_name("type")
            return _first_type_identifier(type_node, source) if type_node is not None else None
        if ancestor.type in _CONTAINERS:
            name = ancestor.child_by_field_name("name")
            return _text(name, source) if name is not None else None  # anonymous class expression
        ancestor = ancestor.parent
    return None


def _first_type_identifier(node: Node, source: bytes) -> str | None:
    """The first type name in `node`, pre-order: Foo in `*Foo`, `Foo<T>`, `Pair[K, V]`, `path::Foo`."""
    stack = [node]
    for _ in range(_TYPE_SEARCH_LIMIT):
        if not stack:
            return None
        current = stack.pop()
        if current.type == "type_identifier":
            return _text(current, source)
        stack.extend(reversed(current.named_children))
    return None


def _reference_symbols(
    nodes: list[Node], definition_starts: Container[int], ignored: frozenset[str], source: bytes
) -> list[Symbol]:
    seen: set[tuple[str, int]] = set()
    symbols: list[Symbol] = []
    for captured in nodes:
        node = _identifier(captured)
        # A definition's own name is also matched by broad patterns like `(type_identifier) @reference.type`.
        if node is None or node.start_byte in definition_starts:
            continue
        name, line = _text(node, source), node.start_point.row + 1
        if name in ignored or (name, line) in seen:
            continue
        seen.add((name, line))
        symbols.append(Symbol(name, "reference", line, line, False))
    return symbols


def _identifier(node: Node) -> Node | None:
    """The identifier a reference names: `new ns.Foo()` captures the member expression, we want Foo."""
    if node.type == "member_expression":
        prop = node.child_by_field_name("property")
        if prop is None:
            return None
        node = prop
    return node if node.type.endswith("identifier") else None


def _text(node: Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", errors="replace")


def _compiled(language: str) -> _Compiled:
    cached = _compiled_cache.get(language)
    if cached is not None:
        return cached
    grammar = _GRAMMARS.get(language)
    if grammar is None:
        raise ValueError(f"no tree-sitter grammar for language {language!r}")
    # Compiling the TypeScript queries takes ~65 ms; the lock keeps concurrent first calls from repeating it.
    with _compile_lock:
        cached = _compiled_cache.get(language)
        if cached is None:
            lang = Language(getattr(importlib.import_module(grammar.module), grammar.factory)())
            sources = [_PREDICATE.sub("", _tags_query(package)) for package in grammar.tag_packages]
            sources.append(grammar.extra)
            cached = _Compiled(lang, _compile_queries(lang, language, [s for s in sources if s]))
            _compiled_cache[language] = cached
    return cached


def _tags_query(package: str) -> str:
    try:
        return (resources.files(package) / "queries" / "tags.scm").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        return ""  # a grammar version without tags: our extra patterns still apply


def _compile_queries(lang: Language, language: str, sources: list[str]) -> tuple[Query, ...]:
    """One combined query (one pass over the tree); if a part fails on this grammar version, each part alone."""
    try:
        return (Query(lang, "\n".join(sources)),)
    except QueryError:
        pass
    queries = []
    for source in sources:
        try:
            queries.append(Query(lang, source))
        except QueryError as exc:
            _log.warning("tree-sitter %s: dropping a symbol query that does not compile: %s", language, exc)
    return tuple(queries)
