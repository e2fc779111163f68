"""Symbols from the tree-sitter grammars: real snippets per language, then hostile input."""

from __future__ import annotations

import random
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from knowledge_base import symbols_treesitter
from knowledge_base.symbol_model import Symbol
from knowledge_base.symbols_treesitter import TREE_SITTER_LANGUAGES, extract_symbols, language_for_path

LANGUAGES = sorted(set(TREE_SITTER_LANGUAGES.values()))


def _source(text: str) -> bytes:
    return textwrap.dedent(text).lstrip("\n").encode()


def _definitions(language: str, text: str) -> set[tuple[str, str, int, int, str | None]]:
    symbols = extract_symbols(language, _source(text))
    return {(s.name, s.kind, s.line, s.end_line, s.parent) for s in symbols if s.is_definition}


def _references(language: str, text: str) -> set[tuple[str, int]]:
    symbols = extract_symbols(language, _source(text))
    return {(s.name, s.line) for s in symbols if not s.is_definition}


JAVASCRIPT = """
class Parser extends Base {
  constructor(opts) {
    super(opts);
  }
  parseConfig(text) {
    return normalize(text).trim();
  }
}
function normalize(s) {
  return new Result(s);
}
const load = async (path) => {
  const fs = require("fs");
  return helper(path);
};
"""


def test_javascript_classes_methods_functions_and_arrow_constants_are_definitions() -> None:
    assert _definitions("javascript", JAVASCRIPT) == {
        ("Parser", "class", 1, 8, None),
        ("constructor", "method", 2, 4, "Parser"),
        ("parseConfig", "method", 5, 7, "Parser"),
        ("normalize", "function", 9, 11, None),
        ("load", "function", 12, 15, None),
    }


def test_javascript_calls_constructions_and_base_classes_are_references_but_require_is_not() -> None:
    references = _references("javascript", JAVASCRIPT)
    assert {("Base", 1), ("normalize", 6), ("trim", 6), ("Result", 10), ("helper", 14)} <= references
    assert not any(name == "require" for name, _ in references)


def test_a_definitions_own_name_is_not_also_a_reference() -> None:
    references = _references("javascript", JAVASCRIPT)
    assert ("Parser", 1) not in references
    assert ("normalize", 9) not in references


def test_references_are_deduplicated_per_name_and_line() -> None:
    symbols = extract_symbols("javascript", b"f(f(f(1)));\nf();\n")
    assert [(s.name, s.line) for s in symbols] == [("f", 1), ("f", 2)]


TYPESCRIPT = """
export interface Shape {
  area(): number;
}
type ShapeMap = Map<string, Shape>;
enum Color { Red, Green }
export abstract class Base implements Shape {
  abstract area(): number;
  describe(): string {
    return format(this.area());
  }
}
namespace Geometry {
  export function origin(): Point { return makePoint(0, 0); }
}
const double = (x: number): number => x * 2;
"""


def test_typescript_interfaces_aliases_enums_classes_and_namespaces_are_definitions() -> None:
    assert _definitions("typescript", TYPESCRIPT) == {
        ("Shape", "interface", 1, 3, None),
        ("area", "method", 2, 2, "Shape"),
        ("ShapeMap", "type", 4, 4, None),
        ("Color", "enum", 5, 5, None),
        ("Base", "class", 6, 11, None),
        ("area", "method", 7, 7, "Base"),
        ("describe", "method", 8, 10, "Base"),
        ("Geometry", "module", 12, 14, None),
        ("origin", "function", 13, 13, None),
        ("double", "function", 15, 15, None),
    }


def test_typescript_type_names_and_calls_are_references() -> None:
    references = _references("typescript", TYPESCRIPT)
    assert {("Map", 4), ("Shape", 4), ("Shape", 6), ("format", 9), ("area", 9), ("Point", 13)} <= references
    assert ("makePoint", 13) in references
    assert ("Base", 6) not in references


def test_tsx_components_are_references_and_html_elements_are_not() -> None:
    text = """
    interface Props { title: string }
    export function Card({ title }: Props) {
      return <Panel><Heading text={title} /><div>{title}</div></Panel>;
    }
    """
    assert _definitions("tsx", text) == {("Props", "interface", 1, 1, None), ("Card", "function", 2, 4, None)}
    references = _references("tsx", text)
    assert {("Props", 2), ("Panel", 3), ("Heading", 3)} <= references
    assert not any(name == "div" for name, _ in references)


def test_jsx_in_plain_javascript_files_is_understood() -> None:
    text = "const App = () => <Layout><span /></Layout>;\n"
    assert _definitions("javascript", text) == {("App", "function", 1, 1, None)}
    assert _references("javascript", text) == {("Layout", 1)}


GO = """
package shapes

import "fmt"

const DefaultScale = 2

type Shape interface {
	Area() float64
}

type Point struct {
	X, Y float64
}

type Celsius float64

func (p *Point) Scale(f float64) Shape {
	fmt.Println(p.X)
	return nil
}

func NewPoint() Point {
	p := Point{}
	p.Scale(DefaultScale)
	return p
}
"""


def test_go_types_get_their_precise_kind_and_methods_their_receiver_as_parent() -> None:
    assert _definitions("go", GO) == {
        ("DefaultScale", "constant", 5, 5, None),
        ("Shape", "interface", 7, 9, None),
        ("Area", "method", 8, 8, "Shape"),
        ("Point", "struct", 11, 13, None),
        ("Celsius", "type", 15, 15, None),
        ("Scale", "method", 17, 20, "Point"),
        ("NewPoint", "function", 22, 26, None),
    }


def test_go_calls_and_type_uses_are_references_but_builtin_types_are_not() -> None:
    references = _references("go", GO)
    assert {("Shape", 17), ("Println", 18), ("Point", 22), ("Point", 23), ("Scale", 24)} <= references
    assert not any(name == "float64" for name, _ in references)
    assert ("Point", 11) not in references


def test_go_methods_on_generic_receivers_name_the_base_type() -> None:
    text = """
    package p

    func (p Pair[K, V]) Key() K { return p.k }
    """
    assert ("Key", "method", 3, 3, "Pair") in _definitions("go", text)


JAVA = """
package demo;

public class OrderService extends BaseService implements Runnable {
    private final Repository repo;

    @Override
    public void run() {
        repo.save(new Order());
    }

    enum Status { OPEN, CLOSED; boolean isOpen() { return this == OPEN; } }
}

interface Repository {
    void save(Order order);
}

record Order(String id) {}
"""


def test_java_classes_interfaces_enums_and_records_with_their_methods_are_definitions() -> None:
    assert _definitions("java", JAVA) == {
        ("OrderService", "class", 3, 12, None),
        ("run", "method", 6, 9, "OrderService"),  # a method starts at its annotation
        ("Status", "enum", 11, 11, None),
        ("isOpen", "method", 11, 11, "Status"),
        ("Repository", "interface", 14, 16, None),
        ("save", "method", 15, 15, "Repository"),
        ("Order", "class", 18, 18, None),
    }


def test_java_supertypes_field_types_calls_and_constructions_are_references() -> None:
    references = _references("java", JAVA)
    assert {("BaseService", 3), ("Runnable", 3), ("Repository", 4), ("save", 8), ("Order", 8)} <= references
    assert {("Order", 15), ("String", 18)} <= references


RUST = """
mod geometry {
    pub fn origin() -> Point { Point::new(0, 0) }
}

pub struct Point { x: i32, y: i32 }

pub enum Shape { Circle(f64), Square(f64) }

pub trait Area {
    fn area(&self) -> f64;
}

impl Point {
    pub fn new(x: i32, y: i32) -> Self { Point { x, y } }
}

impl Area for Shape {
    fn area(&self) -> f64 { compute(self) }
}

type Grid = Vec<Point>;
const MAX: usize = 10;
fn compute(s: &Shape) -> f64 { println!("{}", MAX); 0.0 }
"""


def test_rust_items_get_their_kinds_and_impl_methods_the_implementing_type_as_parent() -> None:
    assert _definitions("rust", RUST) == {
        ("geometry", "module", 1, 3, None),
        ("origin", "function", 2, 2, None),  # a function in a module is not a method
        ("Point", "struct", 5, 5, None),
        ("Shape", "enum", 7, 7, None),
        ("Area", "trait", 9, 11, None),
        ("area", "method", 10, 10, "Area"),
        ("new", "method", 14, 14, "Point"),
        ("area", "method", 18, 18, "Shape"),
        ("Grid", "type", 21, 21, None),
        ("MAX", "constant", 22, 22, None),
        ("compute", "function", 23, 23, None),
    }


def test_rust_path_calls_macros_traits_and_types_are_references_but_self_is_not() -> None:
    references = _references("rust", RUST)
    assert {("new", 2), ("Point", 2), ("Area", 17), ("Shape", 17), ("compute", 18)} <= references
    assert {("Vec", 21), ("Point", 21), ("println", 23), ("Shape", 23)} <= references
    assert not any(name == "Self" for name, _ in references)


def test_rust_generic_impls_name_the_base_type() -> None:
    text = """
    impl<T: Clone> Wrapper<T> {
        fn get(&self) -> T { self.0.clone() }
    }
    """
    assert _definitions("rust", text) == {("get", "method", 2, 2, "Wrapper")}


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("javascript", "function before() {}\nclass Ok { method() {} }\nfunction broken( {{{ \n", {"before", "Ok"}),
        ("go", "package p\nfunc Before() {}\ntype T struct{}\nfunc broken( {{{\n", {"Before", "T"}),
        ("rust", "fn before() {}\nstruct S;\nfn broken( {{{\n", {"before", "S"}),
        ("java", "class A { void before() {} }\nclass B { void broken( {{{ \n", {"A", "before"}),
        ("typescript", "interface I {}\nfunction before(): void {}\nfunction broken( {{{\n", {"I", "before"}),
    ],
)
def test_a_file_with_a_syntax_error_still_yields_the_definitions_before_it(
    language: str, text: str, expected: set[str]
) -> None:
    names = {s.name for s in extract_symbols(language, text.encode()) if s.is_definition}
    assert expected <= names


def test_non_utf8_bytes_are_decoded_with_replacement_instead_of_crashing() -> None:
    symbols = extract_symbols("javascript", b"function caf\xe9() { \xff\xfe(); }\nclass K {}\n")
    assert Symbol("K", "class", 2, 2, True) in symbols
    assert all(isinstance(s.name, str) for s in symbols)


@pytest.mark.parametrize("language", LANGUAGES)
def test_empty_and_comment_only_files_have_no_symbols(language: str) -> None:
    assert extract_symbols(language, b"") == []
    assert extract_symbols(language, b"// nothing here\n\n") == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_random_bytes_do_not_crash_any_grammar(language: str) -> None:
    data = random.Random(language).randbytes(20_000)
    assert isinstance(extract_symbols(language, data), list)


def test_symbols_are_sorted_by_line_then_name() -> None:
    symbols = extract_symbols("go", _source(GO))
    assert symbols == sorted(symbols, key=lambda s: (s.line, s.name))


def test_an_unknown_language_is_an_error() -> None:
    with pytest.raises(ValueError, match="cobol"):
        extract_symbols("cobol", b"")


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_compiles_its_tags_and_own_patterns_into_one_query(language: str) -> None:
    # A grammar upgrade that breaks a pattern makes the module fall back to separate queries (and log).
    assert len(symbols_treesitter._compiled(language).queries) == 1


def test_extraction_from_many_threads_at_once_gives_the_same_results() -> None:
    jobs = [("javascript", JAVASCRIPT), ("typescript", TYPESCRIPT), ("go", GO), ("java", JAVA), ("rust", RUST)] * 20
    expected = {language: extract_symbols(language, _source(text)) for language, text in jobs}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: (job[0], extract_symbols(job[0], _source(job[1]))), jobs))
    assert all(symbols == expected[language] for language, symbols in results)


@pytest.mark.parametrize(
    ("language", "data"),
    [
        # A long run of unmatched openers becomes one wide ERROR node: quadratic for the query cursor.
        ("javascript", b"function ok() {}\n" + b"[" * 200_000 + b"\nfunction after() {}\n"),
        ("go", b"package p\nfunc Ok() {}\n" + b"{" * 200_000),
        # A very deep tree: in-progress matches pile up unless patterns start at a bounded depth.
        ("javascript", b"promise" + b".then(f)" * 20_000 + b";\n"),
    ],
)
def test_pathological_trees_are_handled_in_bounded_time(language: str, data: bytes) -> None:
    started = time.monotonic()
    symbols = extract_symbols(language, data)
    assert time.monotonic() - started < 10  # unguarded, each of these takes minutes
    assert all(s.is_definition or s.kind == "reference" for s in symbols)


def test_a_parse_over_its_time_budget_yields_no_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(symbols_treesitter, "_PARSE_BUDGET_SECONDS", 0.0)
    assert extract_symbols("go", b"package p\n" + b"func F() { x := [](){ }\n" * 20_000) == []


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("src/app.js", "javascript"),
        ("lib/mod.mjs", "javascript"),
        ("lib/mod.cjs", "javascript"),
        ("ui/App.jsx", "javascript"),
        ("src/index.ts", "typescript"),
        ("src/types.d.ts", "typescript"),
        ("src/a.mts", "typescript"),
        ("src/a.cts", "typescript"),
        ("ui/Card.tsx", "tsx"),
        ("cmd/main.go", "go"),
        ("src/Main.java", "java"),
        ("src/lib.rs", "rust"),
        ("SRC/LIB.RS", "rust"),
    ],
)
def test_language_for_path_maps_source_suffixes(path: str, language: str) -> None:
    assert language_for_path(path) == language


@pytest.mark.parametrize("path", ["README.md", "setup.py", "Makefile", "archive.tar.gz", "src/.js/notes", ""])
def test_language_for_path_is_none_for_other_files(path: str) -> None:
    assert language_for_path(path) is None
