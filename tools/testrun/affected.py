"""Affected-test selection for Python: the test files that can reach a changed file.

A test file is affected when it is changed itself, or when it imports a changed module
directly or through other modules of the tree, or when a `conftest.py` above it does. Module
names come from where a file sits: a directory without `__init__.py` is an import root
(`src/`, `tests/`, the repository root). Dynamic imports are followed when their argument is a
string literal. Coverage contexts, when the tree has them (see coverage_map), add the tests
that executed a changed file. Changes the import graph cannot see (packaging, a non-Python
file that is not documentation) select the whole suite, and the reason says so.
"""

from __future__ import annotations

import ast
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_PY_BYTES = 2 << 20
WHOLE_SUITE_FILES = frozenset({
    "pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "pytest.ini", "shipway.toml", "noxfile.py",
    "poetry.lock", "uv.lock", "Pipfile", "Pipfile.lock",
})  # fmt: skip
DOC_SUFFIXES = frozenset({".md", ".rst", ".adoc", ".png", ".jpg", ".svg", ".gif"})
DOC_NAMES = frozenset({"LICENSE", "LICENCE", "NOTICE", "AUTHORS", "CODEOWNERS", ".gitignore", ".gitattributes"})
DOC_DIRS = frozenset({"docs", "doc", ".github"})


@dataclass(frozen=True)
class Affected:
    tests: list[str] | None
    """Test files to run; None means the whole suite."""
    reason: str


def is_test_file(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def _is_doc(path: str) -> bool:
    """Documentation no test can read: prose, images, top-level text files (LICENSE.txt, CHANGES.txt)."""
    pure = PurePosixPath(path)
    in_doc_dir = len(pure.parts) > 1 and pure.parts[0] in DOC_DIRS
    top_level_text = len(pure.parts) == 1 and pure.suffix.lower() == ".txt"
    return pure.name in DOC_NAMES or pure.suffix.lower() in DOC_SUFFIXES or in_doc_dir or top_level_text


class ImportGraph:
    """Which files of a tree import which; built from `ast`, never by importing anything."""

    def __init__(self, tree: Path, py_files: Iterable[str], cache: dict[str, list[str]] | None = None) -> None:
        self.tree = tree
        self.cache = cache if cache is not None else {}
        """Imported names by file content and package: parsing is most of the cost, contents rarely change."""
        self.files = sorted(set(py_files))
        present = set(self.files)
        self.modules: dict[str, set[str]] = defaultdict(set)
        for path in self.files:
            for name in module_names(path, present):
                self.modules[name].add(path)
        self.imports: dict[str, set[str]] = {path: self._imported_names(path, present) for path in self.files}
        self.importers: dict[str, set[str]] = defaultdict(set)
        for path, names in self.imports.items():
            for name in names:
                for target in self.modules.get(name, ()):
                    if target != path:
                        self.importers[target].add(path)

    def _imported_names(self, path: str, present: set[str]) -> set[str]:
        file = self.tree / path
        try:
            if file.is_symlink() or file.stat().st_size > MAX_PY_BYTES:
                return set()
            data = file.read_bytes()
        except OSError:
            return set()
        package = _package_of(path, present)
        key = hashlib.sha1(data, usedforsecurity=False).hexdigest() + "|" + ".".join(package)
        if key in self.cache:
            return set(self.cache[key])
        try:
            source = ast.parse(data, filename=path)
        except (SyntaxError, ValueError):
            return set()
        names: set[str] = set()
        for node in ast.walk(source):
            names.update(_names_of(node, package))
        self.cache[key] = sorted(names)
        return names

    def dependents(self, seeds: Iterable[str]) -> set[str]:
        """Every file that imports a seed, directly or through others (the seeds included)."""
        seen = set(seeds)
        todo = list(seen)
        while todo:
            for importer in self.importers.get(todo.pop(), ()):
                if importer not in seen:
                    seen.add(importer)
                    todo.append(importer)
        return seen

    def importing_names(self, names: set[str]) -> set[str]:
        """Files that import any of `names` (for modules that no longer exist)."""
        return {path for path, imported in self.imports.items() if imported & names}


def module_names(path: str, present: set[str]) -> set[str]:
    """Names `path` can be imported by: from its import root, and from the repository root."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts:
        return set()
    names = {".".join(parts)}
    directory = PurePosixPath(path).parent
    depth = 0  # how many enclosing directories are packages
    while str(directory) not in ("", ".") and str(directory / "__init__.py") in present:
        directory = directory.parent
        depth += 1
    keep = depth + (0 if PurePosixPath(path).name == "__init__.py" else 1)
    if keep:
        names.add(".".join(parts[-keep:]))
    return names


def _package_of(path: str, present: set[str]) -> list[str]:
    """The dotted package a file belongs to, for its relative imports."""
    init = str(PurePosixPath(path).parent / "__init__.py")
    if init not in present:
        return list(PurePosixPath(path).parent.parts[-1:])
    return min(module_names(init, present), key=len).split(".")


def _expand(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[: i + 1]) for i in range(len(parts)) if parts[i]}


def _names_of(node: ast.AST, package: list[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return set().union(*(_expand(alias.name) for alias in node.names))
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package[: len(package) - node.level + 1] if node.level <= len(package) else []
            stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
        else:
            stem = node.module or ""
        if not stem:
            return {alias.name for alias in node.names}
        return _expand(stem) | {f"{stem}.{alias.name}" for alias in node.names if alias.name != "*"}
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        value = node.args[0].value
        if called in ("import_module", "__import__") and isinstance(value, str) and value and value[0] != ".":
            return _expand(value)
    return set()


def conftests_above(test: str, present: set[str]) -> list[str]:
    directory = PurePosixPath(test).parent
    found = []
    while True:
        candidate = str(directory / "conftest.py") if str(directory) != "." else "conftest.py"
        if candidate in present:
            found.append(candidate)
        if str(directory) in ("", "."):
            return found
        directory = directory.parent


def select_affected(
    tree: Path,
    files: Iterable[str],
    changed: Iterable[str],
    covered_by: dict[str, set[str]] | None = None,
    cache: dict[str, list[str]] | None = None,
) -> Affected:
    """The test files affected by `changed` (repo-relative paths; deleted ones too)."""
    listed = sorted(set(files))
    changed = sorted(set(changed))
    if not changed:
        return Affected([], "no file changed since the base commit")
    whole = [p for p in changed if PurePosixPath(p).name in WHOLE_SUITE_FILES or _requirements(p)]
    if whole:
        return Affected(None, f"{whole[0]} can change how every test runs; running the whole suite")
    foreign = [p for p in changed if not _is_doc(p) and not p.endswith(".py")]
    if foreign:
        return Affected(None, f"{foreign[0]} is not Python, and imports cannot show which tests read it; "
                              "running the whole suite")  # fmt: skip
    py_files = [p for p in listed if p.endswith(".py")]
    present = set(py_files)
    graph = ImportGraph(tree, py_files, cache)
    seeds = {p for p in changed if p in present and not _is_doc(p)}
    unreached = _dynamic_suspect(graph, seeds, changed, present, covered_by or {})
    if unreached:
        return Affected(None, f"no test imports {unreached}, directly or through other modules, yet it is part of a "
                              "package: it may be loaded dynamically (plugins, entry points); running the whole "
                              "suite")  # fmt: skip
    gone = {name for p in changed if p.endswith(".py") and p not in present for name in module_names(p, present | {p})}
    reached = graph.dependents(seeds | graph.importing_names(gone))
    tests = {p for p in py_files if is_test_file(p) and _reached(p, reached, present)}
    # a deleted conftest.py took its fixtures away from every test below it
    for conftest in (p for p in changed if PurePosixPath(p).name == "conftest.py" and p not in present):
        below = str(PurePosixPath(conftest).parent)
        tests |= {p for p in py_files if is_test_file(p) and (below == "." or p.startswith(below + "/"))}
    if covered_by:
        tests |= {t for p in changed for t in covered_by.get(p, set()) if t in present}
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    if not tests:
        return Affected([], f"no test file imports the changed files ({shown})")
    via = " or executed them (coverage)" if covered_by else ""
    return Affected(sorted(tests), f"{len(tests)} test file(s) import the changed files{via} ({shown})")


def _dynamic_suspect(
    graph: ImportGraph, seeds: set[str], changed: list[str], present: set[str], covered_by: dict[str, set[str]]
) -> str | None:
    """A changed (or deleted) package module that no test reaches: found through a registry, most likely."""
    for path in sorted(seeds | {p for p in changed if p.endswith(".py") and p not in present}):
        pure = PurePosixPath(path)
        if is_test_file(path) or pure.name == "conftest.py" or covered_by.get(path) or _is_doc(path):
            continue
        if str(pure.parent / "__init__.py") not in present and pure.name != "__init__.py":
            continue  # a standalone script: nothing loads it by package name
        if path in present:
            reached = graph.dependents({path})
        else:
            reached = graph.dependents(graph.importing_names(module_names(path, present | {path})))
        if not any(is_test_file(p) and _reached(p, reached, present) for p in present):
            return path
    return None


def _reached(test: str, reached: set[str], present: set[str]) -> bool:
    return test in reached or any(c in reached for c in conftests_above(test, present))


def _requirements(path: str) -> bool:
    """requirements*.txt / .in, or any such file under a requirements/ directory."""
    pure = PurePosixPath(path)
    named = pure.name.startswith("requirements") or any(p.startswith("requirements") for p in pure.parts[:-1])
    return named and pure.suffix in (".txt", ".in")
