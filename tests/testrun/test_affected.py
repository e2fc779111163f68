"""Affected-test selection on small real trees, and the coverage contexts that add to it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tools.testrun.affected import ImportGraph, conftests_above, is_test_file, module_names, select_affected
from tools.testrun.coverage_map import covering_tests


def write_tree(root: Path, files: dict[str, str]) -> list[str]:
    """Write `files` under `root`; the repo-relative file list, as git would give it."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


PKG = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "def f():\n    return 1\n",
    "pkg/other.py": "def g():\n    return 2\n",
}


# -- imports ------------------------------------------------------------------------------------------------------


def test_a_test_importing_the_changed_module_is_selected_and_others_are_not(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "tests/test_mod.py": "import pkg.mod\n",
        "tests/test_other.py": "from pkg.other import g\n",
        "tests/test_plain.py": "import os\n",
    })  # fmt: skip
    found = select_affected(tmp_path, files, ["pkg/mod.py"])
    assert found.tests == ["tests/test_mod.py"]
    assert found.reason == "1 test file(s) import the changed files (pkg/mod.py)"


def test_imports_are_followed_transitively(tmp_path: Path) -> None:
    files = write_tree(tmp_path, {
        "a.py": "import b\n",
        "b.py": "from c import helper\n",
        "c.py": "def helper():\n    pass\n",
        "d.py": "",
        "tests/test_a.py": "import a\n",
        "tests/test_d.py": "import d\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["c.py"]).tests == ["tests/test_a.py"]
    assert select_affected(tmp_path, files, ["b.py"]).tests == ["tests/test_a.py"]
    assert select_affected(tmp_path, files, ["d.py"]).tests == ["tests/test_d.py"]


def test_from_package_import_module_reaches_that_module_only(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "tests/test_from.py": "from pkg import mod\n",
        "tests/test_alias.py": "import pkg.other as o\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["pkg/mod.py"]).tests == ["tests/test_from.py"]
    assert select_affected(tmp_path, files, ["pkg/other.py"]).tests == ["tests/test_alias.py"]
    assert select_affected(tmp_path, files, ["pkg/__init__.py"]).tests == ["tests/test_alias.py", "tests/test_from.py"]


def test_relative_imports_resolve_within_their_package(tmp_path: Path) -> None:
    files = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "X = 1\n",
        "pkg/sub/y.py": "Y = 2\n",
        "pkg/sub/uses_x.py": "from . import x\n",
        "pkg/api/__init__.py": "",
        "pkg/api/uses_y.py": "from ..sub import y\n",
        "tests/test_uses_x.py": "from pkg.sub import uses_x\n",
        "tests/test_uses_y.py": "from pkg.api.uses_y import y\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["pkg/sub/x.py"]).tests == ["tests/test_uses_x.py"]
    assert select_affected(tmp_path, files, ["pkg/sub/y.py"]).tests == ["tests/test_uses_y.py"]


def test_a_relative_import_in_a_package_init_reaches_every_importer_of_the_package(tmp_path: Path) -> None:
    files = write_tree(tmp_path, {
        "pkg/__init__.py": "from .impl import run\n",
        "pkg/impl.py": "def run():\n    pass\n",
        "pkg/unrelated.py": "",
        "tests/test_pkg.py": "from pkg.unrelated import *\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["pkg/impl.py"]).tests == ["tests/test_pkg.py"]


def test_src_layout_modules_are_imported_by_their_package_name(tmp_path: Path) -> None:
    files = write_tree(tmp_path, {
        "src/pkg/__init__.py": "",
        "src/pkg/core.py": "def f():\n    pass\n",
        "src/pkg/util.py": "from .core import f\n",
        "tests/test_util.py": "from pkg.util import f\n",
        "tests/test_core.py": "from pkg import core\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["src/pkg/core.py"]).tests == ["tests/test_core.py", "tests/test_util.py"]
    assert select_affected(tmp_path, files, ["src/pkg/util.py"]).tests == ["tests/test_util.py"]


def test_a_helper_module_next_to_the_tests_is_followed_without_a_tests_package(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "tests/helpers.py": "from pkg.mod import f\n\ndef make():\n    return f()\n",
        "tests/test_a.py": "from helpers import make\n",
        "tests/test_b.py": "import json\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["tests/helpers.py"]).tests == ["tests/test_a.py"]
    assert select_affected(tmp_path, files, ["pkg/mod.py"]).tests == ["tests/test_a.py"]


def test_a_conftest_importing_the_change_selects_the_tests_below_it_only(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "tests/unit/conftest.py": "import pytest\nfrom pkg.mod import f\n",
        "tests/unit/test_a.py": "def test_a():\n    pass\n",
        "tests/unit/deep/test_b.py": "def test_b():\n    pass\n",
        "tests/integration/conftest.py": "import pytest\n",
        "tests/integration/test_c.py": "def test_c():\n    pass\n",
    })  # fmt: skip
    expected = ["tests/unit/deep/test_b.py", "tests/unit/test_a.py"]
    assert select_affected(tmp_path, files, ["pkg/mod.py"]).tests == expected
    assert select_affected(tmp_path, files, ["tests/unit/conftest.py"]).tests == expected
    assert select_affected(tmp_path, files, ["tests/integration/conftest.py"]).tests == ["tests/integration/test_c.py"]


def test_a_root_conftest_importing_the_change_selects_every_test(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "conftest.py": "from pkg import other\n",
        "tests/test_a.py": "",
        "lib/sub/test_b.py": "",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["pkg/other.py"]).tests == ["lib/sub/test_b.py", "tests/test_a.py"]


def test_deleting_a_conftest_selects_the_tests_it_served(tmp_path: Path) -> None:
    files = write_tree(tmp_path, {"tests/unit/test_a.py": "def test_a(db):\n    pass\n", "tests/other/test_b.py": ""})
    assert select_affected(tmp_path, files, ["tests/unit/conftest.py"]).tests == ["tests/unit/test_a.py"]


def test_a_changed_test_file_selects_itself(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_a.py": "import os\n", "tests/test_b.py": "import sys\n"})
    found = select_affected(tmp_path, files, ["tests/test_b.py"])
    assert found.tests == ["tests/test_b.py"]
    assert "tests/test_b.py" in found.reason


def test_a_deleted_module_selects_the_tests_that_still_import_it(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "pkg/wrapper.py": "from pkg.gone import thing\n",
        "tests/test_direct.py": "from pkg.gone import thing\n",
        "tests/test_wrapped.py": "import pkg.wrapper\n",
        "tests/test_mod.py": "import pkg.mod\n",
    })  # fmt: skip
    found = select_affected(tmp_path, files, ["pkg/gone.py"])
    assert found.tests == ["tests/test_direct.py", "tests/test_wrapped.py"]


def test_a_deleted_test_file_selects_nothing(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    assert select_affected(tmp_path, files, ["tests/test_removed.py"]).tests == []


def test_dynamic_imports_with_a_literal_name_are_followed(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "pkg/plugin.py": "",
        "pkg/legacy.py": "",
        "tests/test_dyn.py": 'import importlib\n\nmod = importlib.import_module("pkg.plugin")\n',
        "tests/test_dunder.py": '__import__("pkg.legacy")\n',
        "tests/test_computed.py": 'from importlib import import_module\n\nname = "pkg.mod"\nimport_module(name)\n',
        "tests/test_relative.py": 'from importlib import import_module\n\nimport_module(".mod", "pkg")\n',
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["pkg/plugin.py"]).tests == ["tests/test_dyn.py"]
    assert select_affected(tmp_path, files, ["pkg/legacy.py"]).tests == ["tests/test_dunder.py"]
    computed = select_affected(tmp_path, files, ["pkg/mod.py"])  # only a computed name reaches it
    assert computed.tests is None and "may be loaded dynamically" in computed.reason


def test_a_file_with_a_syntax_error_does_not_break_the_selection(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "pkg/broken.py": "def (:\n",
        "tests/test_mod.py": "import pkg.mod\n",
        "tests/test_broken.py": "import pkg.mod\nclass :\n",
    })  # fmt: skip
    assert select_affected(tmp_path, files, ["pkg/broken.py"]).tests is None  # nothing can import it: suspect
    assert select_affected(tmp_path, files, ["pkg/mod.py"]).tests == ["tests/test_mod.py"]
    assert select_affected(tmp_path, files, ["tests/test_broken.py"]).tests == ["tests/test_broken.py"]


def test_listed_files_missing_on_disk_or_symlinked_are_read_as_importing_nothing(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/real.py": "import pkg.mod\n"})
    (tmp_path / "tests/test_link.py").symlink_to(tmp_path / "tests/real.py")
    listed = [*files, "tests/test_link.py", "tests/test_missing.py"]
    found = select_affected(tmp_path, listed, ["pkg/mod.py"])
    assert found.tests is None and "no test imports pkg/mod.py" in found.reason


def test_a_package_module_no_test_reaches_runs_the_whole_suite(tmp_path: Path) -> None:
    # sqlfluff-style: rules found by a plugin registry (a computed import), never imported by name
    files = write_tree(tmp_path, PKG | {
        "pkg/rules/__init__.py": "def get_rules():\n    from pkg.rules.r01 import Rule\n    return [Rule]\n",
        "pkg/rules/r01.py": "class Rule:\n    pass\n",
        "pkg/registry.py": "import importlib\n\n\ndef load(name):\n    return importlib.import_module(name)\n",
        "tests/test_registry.py": "from pkg.registry import load\n",
        "scripts/release.py": "print('release')\n",
    })  # fmt: skip
    found = select_affected(tmp_path, files, ["pkg/rules/r01.py"])
    assert found.tests is None and found.reason.startswith("no test imports pkg/rules/r01.py")
    deleted = select_affected(tmp_path, [f for f in files if f != "pkg/rules/r01.py"], ["pkg/rules/r01.py"])
    assert deleted.tests is None, "a deleted package module may have been found by discovery too"
    script = select_affected(tmp_path, files, ["scripts/release.py"])
    assert script.tests == [], "a standalone script is not loaded by package name"
    covered = select_affected(tmp_path, files, ["pkg/rules/r01.py"], {"pkg/rules/r01.py": {"tests/test_registry.py"}})
    assert covered.tests == ["tests/test_registry.py"], "coverage data shows who runs it"


def test_the_import_cache_serves_unchanged_files_without_parsing_them_again(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    cache: dict[str, list[str]] = {}
    first = select_affected(tmp_path, files, ["pkg/mod.py"], cache=cache)
    assert first.tests == ["tests/test_mod.py"] and any(names == ["pkg", "pkg.mod"] for names in cache.values())
    for key in cache:  # poison the cache: a hit must come from it, not from parsing
        cache[key] = ["pkg", "pkg.other"] if cache[key] == ["pkg", "pkg.mod"] else cache[key]
    assert select_affected(tmp_path, files, ["pkg/other.py"], cache=cache).tests == ["tests/test_mod.py"]
    (tmp_path / "tests/test_mod.py").write_text("import pkg.mod  # changed content, new key\n")
    assert select_affected(tmp_path, files, ["pkg/mod.py"], cache=cache).tests == ["tests/test_mod.py"]


# -- what is not Python -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changed",
    [
        ["README.md"],
        ["docs/guide.rst", "docs/conf.yaml"],
        ["LICENSE", "CODEOWNERS", ".gitignore"],
        [".github/workflows/ci.yml"],
        ["docs/diagram.svg", "CHANGES.txt"],
    ],
)
def test_documentation_changes_select_no_tests_and_say_so(tmp_path: Path, changed: list[str]) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    found = select_affected(tmp_path, files, changed)
    assert found.tests == []
    assert found.reason.startswith("no test file imports the changed files (")
    assert sorted(changed)[0] in found.reason


@pytest.mark.parametrize(
    "name",
    ["pyproject.toml", "requirements.txt", "requirements-dev.txt", "requirements.in", "setup.cfg", "setup.py",
     "tox.ini", "pytest.ini", "shipway.toml", "uv.lock", "poetry.lock", "services/api/pyproject.toml"],
)  # fmt: skip
def test_packaging_and_test_config_changes_run_the_whole_suite(tmp_path: Path, name: str) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    found = select_affected(tmp_path, files, ["pkg/mod.py", name])
    assert found.tests is None
    assert found.reason == f"{name} can change how every test runs; running the whole suite"


def test_requirements_in_a_requirements_directory_run_the_whole_suite(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    assert select_affected(tmp_path, files, ["requirements/dev.txt"]).tests is None


@pytest.mark.parametrize("name", ["tests/data/expected.json", "Makefile", "config/settings.yaml", "pkg/types.pyi"])
def test_other_non_python_changes_run_the_whole_suite(tmp_path: Path, name: str) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    found = select_affected(tmp_path, files, ["README.md", name])
    assert found.tests is None
    assert found.reason.startswith(f"{name} is not Python")
    assert found.reason.endswith("running the whole suite")


def test_no_changes_select_nothing(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\n"})
    found = select_affected(tmp_path, files, [])
    assert (found.tests, found.reason) == ([], "no file changed since the base commit")


def test_the_reason_names_three_changed_files_and_counts_the_rest(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import pkg.mod\nimport pkg.other\n"})
    found = select_affected(tmp_path, files, ["pkg/mod.py", "pkg/other.py", "a.py", "b.py", "c.py"])
    assert found.tests == ["tests/test_mod.py"]
    assert found.reason == "1 test file(s) import the changed files (a.py, b.py, c.py and 2 more)"


# -- the pieces ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "present", "expected"),
    [
        ("pkg/mod.py", {"pkg/__init__.py"}, {"pkg.mod"}),
        ("pkg/__init__.py", {"pkg/__init__.py"}, {"pkg"}),
        ("src/pkg/mod.py", {"src/pkg/__init__.py"}, {"src.pkg.mod", "pkg.mod"}),
        ("src/pkg/sub/__init__.py", {"src/pkg/__init__.py", "src/pkg/sub/__init__.py"}, {"src.pkg.sub", "pkg.sub"}),
        ("tests/helpers.py", set(), {"tests.helpers", "helpers"}),
        ("tests/helpers.py", {"tests/__init__.py"}, {"tests.helpers"}),
        ("setup.py", set(), {"setup"}),
        ("__init__.py", set(), set()),
    ],
)
def test_module_names_come_from_the_import_root_and_the_repository_root(
    path: str, present: set[str], expected: set[str]
) -> None:
    assert module_names(path, present | {path}) == expected


def test_conftests_above_lists_the_nearest_first_up_to_the_root() -> None:
    present = {"conftest.py", "tests/conftest.py", "tests/unit/deep/conftest.py", "other/conftest.py"}
    assert conftests_above("tests/unit/deep/test_x.py", present) == [
        "tests/unit/deep/conftest.py",
        "tests/conftest.py",
        "conftest.py",
    ]
    assert conftests_above("test_top.py", present) == ["conftest.py"]
    assert conftests_above("lib/test_y.py", set()) == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [("tests/test_a.py", True), ("pkg/a_test.py", True), ("tests/conftest.py", False), ("tests/test_a.txt", False),
     ("testing/helpers.py", False)],
)  # fmt: skip
def test_test_files_are_named_test_x_or_x_test(path: str, expected: bool) -> None:
    assert is_test_file(path) is expected


def test_the_import_graph_knows_who_imports_what_and_ignores_self_imports(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"pkg/mod.py": "import pkg.mod\nfrom pkg import other\n"})
    graph = ImportGraph(tmp_path, files)
    assert graph.importers["pkg/other.py"] == {"pkg/mod.py"}
    assert "pkg/mod.py" not in graph.importers.get("pkg/mod.py", set())
    assert graph.dependents({"pkg/other.py"}) == {"pkg/other.py", "pkg/mod.py"}
    assert graph.importing_names({"pkg.other"}) == {"pkg/mod.py"}


# -- coverage contexts --------------------------------------------------------------------------------------------


def coverage_db(path: Path, lines: dict[str, list[str]]) -> Path:
    """A coverage.py 7 data file as `pytest --cov --cov-context=test` leaves it: {measured file: [contexts]}."""
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            """
            CREATE TABLE meta (key text, value text, unique (key));
            CREATE TABLE file (id integer primary key, path text, unique (path));
            CREATE TABLE context (id integer primary key, context text, unique (context));
            CREATE TABLE line_bits (file_id integer, context_id integer, numbits blob,
                                    foreign key (file_id) references file (id),
                                    foreign key (context_id) references context (id),
                                    unique (file_id, context_id));
            INSERT INTO meta VALUES ('version', '7.6.1'), ('has_arcs', '0');
            INSERT INTO context (id, context) VALUES (1, '');
            """
        )
        for file_id, (measured, contexts) in enumerate(lines.items(), start=1):
            db.execute("INSERT INTO file (id, path) VALUES (?, ?)", (file_id, measured))
            for context in contexts:
                db.execute("INSERT OR IGNORE INTO context (context) VALUES (?)", (context,))
                (context_id,) = db.execute("SELECT id FROM context WHERE context = ?", (context,)).fetchone()
                db.execute("INSERT INTO line_bits VALUES (?, ?, ?)", (file_id, context_id, bytes([0b1110, 0b1])))
        db.commit()
    return path


REPO_FILES = [
    "pkg/__init__.py", "pkg/mod.py", "pkg/other.py", "pkg/untested.py",
    "tests/test_mod.py", "tests/test_other.py", "tests/test_legacy.py", "tests/sub/test_deep.py", "README.md",
]  # fmt: skip


@pytest.fixture
def coverage_file(tmp_path: Path) -> Path:
    return coverage_db(tmp_path / ".coverage", {
        "/home/ci/checkout/pkg/mod.py": [
            "", "tests/test_mod.py::test_a|run", "tests/test_mod.py::TestX::test_b[1]|setup",
            "tests.test_legacy.test_d", "elsewhere/test_deep.py::test_e|run",
        ],
        "/home/ci/checkout/pkg/other.py": ["tests/test_other.py::test_c|run", "not-a-test-context"],
        "/home/ci/checkout/pkg/untested.py": [""],
        "/usr/lib/python3.11/json/__init__.py": ["tests/test_other.py::test_c|run"],
    })  # fmt: skip


def test_coverage_contexts_map_changed_files_to_the_test_files_that_ran_them(coverage_file: Path) -> None:
    found = covering_tests(coverage_file, ["pkg/mod.py", "pkg/other.py", "pkg/untested.py", "pkg/new.py"], REPO_FILES)
    assert found == {
        "pkg/mod.py": {"tests/test_mod.py", "tests/test_legacy.py", "tests/sub/test_deep.py"},
        "pkg/other.py": {"tests/test_other.py"},
    }


def test_coverage_adds_tests_that_executed_a_change_without_importing_it(tmp_path: Path, coverage_file: Path) -> None:
    files = write_tree(tmp_path, PKG | {
        "tests/test_mod.py": "import pkg.mod\n",
        "tests/test_other.py": "import subprocess\n",  # runs pkg.other in a subprocess, say
        "tests/test_legacy.py": "",
    })  # fmt: skip
    covered = covering_tests(coverage_file, ["pkg/other.py"], files)
    assert covered == {"pkg/other.py": {"tests/test_other.py"}}
    found = select_affected(tmp_path, files, ["pkg/other.py"], covered)
    assert found.tests == ["tests/test_other.py"]
    assert found.reason == "1 test file(s) import the changed files or executed them (coverage) (pkg/other.py)"


def test_coverage_naming_a_test_file_not_in_the_tree_adds_nothing(tmp_path: Path) -> None:
    files = write_tree(tmp_path, PKG | {"tests/test_mod.py": "import os\n"})
    found = select_affected(tmp_path, files, ["pkg/mod.py"], {"pkg/mod.py": {"tests/test_deleted.py"}})
    assert found.tests == []


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just text\n" * 10, b"", b"SQLite format 3\x00" + b"\x00" * 200],
    ids=["text", "empty", "truncated-sqlite"],
)
def test_a_data_file_that_is_not_a_coverage_database_gives_no_coverage(tmp_path: Path, content: bytes) -> None:
    data = tmp_path / ".coverage"
    data.write_bytes(content)
    assert covering_tests(data, ["pkg/mod.py"], REPO_FILES) == {}


def test_a_sqlite_file_without_coverage_tables_gives_no_coverage(tmp_path: Path) -> None:
    data = tmp_path / ".coverage"
    with closing(sqlite3.connect(data)) as db:
        db.execute("CREATE TABLE unrelated (x integer)")
        db.commit()
    assert covering_tests(data, ["pkg/mod.py"], REPO_FILES) == {}


def test_a_missing_or_symlinked_data_file_gives_no_coverage(tmp_path: Path, coverage_file: Path) -> None:
    assert covering_tests(tmp_path / "absent", ["pkg/mod.py"], REPO_FILES) == {}
    link = tmp_path / "link.coverage"
    link.symlink_to(coverage_file)
    assert covering_tests(link, ["pkg/mod.py"], REPO_FILES) == {}
