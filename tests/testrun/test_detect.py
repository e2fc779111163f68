"""How a tree's tests are found (shipway.toml [test], else detection), and the comparison with the base commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.errors import ToolInputError
from tools.testrun.detect import DEPENDENCY_FILES, NPM_DEFAULT_TEST, TestConfig, read_test_config, resolve_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def detected(root: Path) -> tuple[str, str]:
    spec = resolve_spec(root, TestConfig())
    return spec.framework, spec.source


def package_json(test: str | None = None, **extra: object) -> str:
    data: dict[str, object] = {"name": "sample", "version": "1.0.0", **extra}
    if test is not None:
        data["scripts"] = {"test": test}
    return json.dumps(data)


# -- detection ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "source"),
    [
        ({"pyproject.toml": "[project]\nname = 'x'\n\n[tool.pytest.ini_options]\naddopts = '-q'\n"},
         "pyproject.toml [tool.pytest]"),
        ({"setup.cfg": "[metadata]\nname = x\n\n[tool:pytest]\ntestpaths = tests\n"}, "setup.cfg [tool:pytest]"),
        ({"tox.ini": "[tox]\nenvlist = py311\n\n[pytest]\naddopts = -q\n"}, "tox.ini [pytest]"),
        ({"pytest.ini": "[pytest]\naddopts = -q\n"}, "pytest.ini"),
        ({"conftest.py": "import pytest\n"}, "conftest.py"),
        ({"pyproject.toml": "[project]\nname = 'x'\n", "tests/test_a.py": ""}, "pyproject.toml and tests/test_*.py"),
    ],
)  # fmt: skip
def test_pytest_is_detected_from_its_configuration(tmp_path: Path, files: dict[str, str], source: str) -> None:
    assert detected(write_tree(tmp_path, files)) == ("pytest", source)


def test_config_files_without_a_pytest_section_do_not_mean_pytest(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "pyproject.toml": "[project]\nname = 'x'\n",
        "setup.cfg": "[metadata]\nname = x\n",
        "tox.ini": "[tox]\nenvlist = py311\n",
        "go.mod": "module example.com/x\n",
    })  # fmt: skip
    assert detected(tmp_path) == ("go", "go.mod")


def test_an_unparsable_ini_file_is_searched_for_the_section_header(tmp_path: Path) -> None:
    write_tree(tmp_path, {"tox.ini": "no header line\n[pytest]\naddopts = -q\n"})
    assert detected(tmp_path) == ("pytest", "tox.ini [pytest]")


def test_a_pytest_ini_without_a_pytest_section_still_means_pytest(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pytest.ini": "", "tests/test_a.py": "def test_a():\n    pass\n"})
    assert detected(tmp_path)[0] == "pytest"


def test_a_real_package_json_test_script_means_node(tmp_path: Path) -> None:
    write_tree(tmp_path, {"package.json": package_json("node --test test/")})
    spec = resolve_spec(tmp_path, TestConfig())
    assert (spec.framework, spec.source) == ("node", "package.json scripts.test: node --test test/")
    assert spec.node_script == "node --test test/"
    assert spec.setup is None  # no dependencies, nothing to install


def test_npms_default_no_test_specified_script_is_not_a_test_setup(tmp_path: Path) -> None:
    write_tree(tmp_path, {"package.json": package_json(NPM_DEFAULT_TEST)})
    with pytest.raises(ToolInputError, match="no test setup found"):
        resolve_spec(tmp_path, TestConfig())
    write_tree(tmp_path, {"Makefile": "test:\n\tnpm run check\n"})
    assert detected(tmp_path) == ("make", "Makefile test target")


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '{"scripts": ["test"]}', '{"scripts": {"test": 5}}', '{"scripts": {"test": "  "}}'],
)
def test_a_broken_or_odd_package_json_is_not_node(tmp_path: Path, text: str) -> None:
    write_tree(tmp_path, {"package.json": text, "Cargo.toml": "[package]\nname = 'x'\n"})
    assert detected(tmp_path) == ("cargo", "Cargo.toml")


@pytest.mark.parametrize(
    ("text", "module"),
    [("module example.com/gosample\n\ngo 1.22\n", "example.com/gosample"),
     ('// comment\nmodule "example.com/quoted"\n', "example.com/quoted"),
     ("go 1.22\n", None)],
)  # fmt: skip
def test_go_mod_means_go_and_gives_the_module_path(tmp_path: Path, text: str, module: str | None) -> None:
    write_tree(tmp_path, {"go.mod": text})
    spec = resolve_spec(tmp_path, TestConfig())
    assert (spec.framework, spec.source, spec.go_module) == ("go", "go.mod", module)


def test_cargo_toml_means_cargo(tmp_path: Path) -> None:
    write_tree(tmp_path, {"Cargo.toml": "[package]\nname = 'cs'\n", "Makefile": "test:\n\tcargo test\n"})
    spec = resolve_spec(tmp_path, TestConfig())
    assert (spec.framework, spec.source, spec.go_module, spec.node_script) == ("cargo", "Cargo.toml", None, None)


@pytest.mark.parametrize("makefile", ["all: build\n\ntest: build\n\t./run-tests\n", "test:\n\t./t\n", "test :: a\n"])
def test_a_makefile_test_target_means_make(tmp_path: Path, makefile: str) -> None:
    write_tree(tmp_path, {"Makefile": makefile})
    assert detected(tmp_path) == ("make", "Makefile test target")


@pytest.mark.parametrize("makefile", ["test := unit\n", "test:= unit\n", ".PHONY: test\nunit-test:\n\tx\n", ""])
def test_a_makefile_without_a_test_target_is_not_make(tmp_path: Path, makefile: str) -> None:
    write_tree(tmp_path, {"Makefile": makefile})
    with pytest.raises(ToolInputError):
        resolve_spec(tmp_path, TestConfig())


@pytest.mark.parametrize(
    ("files", "framework"),
    [
        ({"pyproject.toml": "[tool.pytest.ini_options]\n", "package.json": package_json("jest"),
          "go.mod": "module m\n"}, "pytest"),
        ({"package.json": package_json("jest"), "go.mod": "module m\n", "Cargo.toml": ""}, "node"),
        ({"go.mod": "module m\n", "Cargo.toml": "", "Makefile": "test:\n"}, "go"),
        ({"Cargo.toml": "", "Makefile": "test:\n"}, "cargo"),
    ],
)  # fmt: skip
def test_detection_order_is_pytest_node_go_cargo_make(tmp_path: Path, files: dict[str, str], framework: str) -> None:
    assert detected(write_tree(tmp_path, files))[0] == framework


def test_a_tree_without_any_test_setup_is_told_how_to_configure_one(tmp_path: Path) -> None:
    write_tree(tmp_path, {"README.md": "# nothing here\n", "main.c": "int main(void) { return 0; }\n"})
    with pytest.raises(ToolInputError) as raised:
        resolve_spec(tmp_path, TestConfig())
    message = str(raised.value)
    assert message.startswith("no test setup found")
    assert 'add to shipway.toml:\n[test]\ncommand = "your test command"' in message


@pytest.mark.parametrize(
    ("sample", "framework", "go_mod", "node_script"),
    [("pytest-sample", "pytest", None, None), ("node-sample", "node", None, "node --test"),
     ("go-sample", "go", "example.com/gosample", None)],
)  # fmt: skip
def test_the_sample_repos_are_detected(
    sample: str, framework: str, go_mod: str | None, node_script: str | None
) -> None:
    spec = resolve_spec(EXAMPLES / sample, TestConfig())
    assert (spec.framework, spec.go_module, spec.node_script, spec.setup) == (framework, go_mod, node_script, None)


# -- shipway.toml [test] ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "port = 9000\n", "[other]\nx = 1\n"])
def test_no_test_table_is_an_empty_config(text: str | None) -> None:
    assert read_test_config(text) == TestConfig()


def test_a_command_alone_makes_a_command_framework(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pyproject.toml": "[tool.pytest.ini_options]\n"})
    config = read_test_config('[test]\ncommand = "./run-tests --fast"\nci = "make ci"\njunit = ["out/*.xml"]\n')
    spec = resolve_spec(tmp_path, config)
    assert (spec.framework, spec.source, spec.command) == (
        "command",
        "shipway.toml [test] command",
        "./run-tests --fast",
    )
    assert (spec.ci, spec.junit) == ("make ci", ("out/*.xml",))


def test_a_configured_framework_wins_over_detection(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pyproject.toml": "[tool.pytest.ini_options]\n", "go.mod": "module example.com/m\n"})
    spec = resolve_spec(tmp_path, read_test_config('[test]\nframework = "go"\n'))
    assert (spec.framework, spec.source, spec.go_module) == ("go", "shipway.toml [test] framework", "example.com/m")


def test_the_command_framework_without_a_command_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match='framework = "command" needs command'):
        resolve_spec(tmp_path, read_test_config('[test]\nframework = "command"\n'))


def test_an_unknown_key_in_the_test_table_is_refused_by_name() -> None:
    with pytest.raises(ToolInputError, match=r"shipway\.toml \[test\]: comand: Extra inputs are not permitted"):
        read_test_config('[test]\ncomand = "pytest"\n')


def test_an_unknown_framework_is_refused_by_name() -> None:
    with pytest.raises(ToolInputError, match=r"shipway\.toml \[test\]: framework: .*'pytest'"):
        read_test_config('[test]\nframework = "jest"\n')


def test_invalid_toml_is_refused() -> None:
    with pytest.raises(ToolInputError, match="shipway.toml is not valid TOML"):
        read_test_config('[test\ncommand = "x"\n')


def test_a_test_key_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ToolInputError, match=r"`test` must be a table"):
        read_test_config('test = "pytest -q"\n')


def test_the_config_is_frozen() -> None:
    config = read_test_config('[test]\ncommand = "x"\n')
    with pytest.raises(ValueError, match="frozen"):
        config.command = "y"  # type: ignore[misc]


# -- setup --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deps", "lock", "setup"),
    [
        ({"dependencies": {"left-pad": "1.3.0"}}, True, "npm ci --no-audit --no-fund"),
        ({"dependencies": {"left-pad": "1.3.0"}}, False, "npm install --no-audit --no-fund"),
        ({"devDependencies": {"vitest": "^3"}}, False, "npm install --no-audit --no-fund"),
        ({"dependencies": {}}, True, None),
    ],
)
def test_node_with_dependencies_installs_them_first(
    tmp_path: Path, deps: dict[str, object], lock: bool, setup: str | None
) -> None:
    files = {"package.json": package_json("vitest run", **deps)}
    if lock:
        files["package-lock.json"] = "{}"
    spec = resolve_spec(write_tree(tmp_path, files), TestConfig())
    assert (spec.framework, spec.setup) == ("node", setup)


def test_a_configured_setup_replaces_the_default_and_an_empty_one_disables_it(tmp_path: Path) -> None:
    write_tree(tmp_path, {"package.json": package_json("jest", dependencies={"a": "1"})})
    assert resolve_spec(tmp_path, read_test_config('[test]\nsetup = "pnpm i"\n')).setup == "pnpm i"
    assert resolve_spec(tmp_path, read_test_config('[test]\nsetup = ""\n')).setup is None


def test_other_frameworks_have_no_default_setup(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pyproject.toml": "[tool.pytest.ini_options]\n", "requirements.txt": "requests\n",
                          "package.json": package_json("jest", dependencies={"a": "1"})})  # fmt: skip
    assert resolve_spec(tmp_path, TestConfig()).setup is None


def test_setup_inputs_list_only_the_dependency_files_that_exist(tmp_path: Path) -> None:
    write_tree(tmp_path, {"Cargo.lock": "", "pyproject.toml": "[tool.pytest.ini_options]\n", "requirements.txt": "",
                          "notes.txt": ""})  # fmt: skip
    (tmp_path / "go.sum").mkdir()  # a directory is not a file
    spec = resolve_spec(tmp_path, TestConfig())
    assert spec.setup_inputs == ("pyproject.toml", "requirements.txt", "Cargo.lock")
    assert set(spec.setup_inputs) <= set(DEPENDENCY_FILES)


def test_configured_setup_inputs_are_also_filtered_to_existing_files(tmp_path: Path) -> None:
    write_tree(tmp_path, {"deps/lock.txt": "", "conftest.py": ""})
    config = read_test_config('[test]\nsetup = "./install"\nsetup_inputs = ["deps/lock.txt", "missing.lock"]\n')
    assert resolve_spec(tmp_path, config).setup_inputs == ("deps/lock.txt",)
