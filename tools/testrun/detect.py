"""How a repository runs its tests: the `[test]` table of shipway.toml, else detection.

Detection looks at the files of the tested tree in a fixed order: pytest (pyproject.toml,
setup.cfg, tox.ini, pytest.ini, conftest.py), a `package.json` test script, `go.mod`,
`Cargo.toml`, a Makefile `test` target. The `[test]` table can name the framework, replace
the command, add a dependency-install step and give the CI command.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import ToolInputError
from tools.repo_tables import read_table

Framework = Literal["pytest", "node", "go", "cargo", "make", "command"]
NPM_DEFAULT_TEST = 'echo "Error: no test specified" && exit 1'
DEPENDENCY_FILES = (
    "pyproject.toml", "setup.cfg", "setup.py", "requirements.txt", "requirements-dev.txt", "requirements-test.txt",
    "poetry.lock", "uv.lock", "package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
    "go.mod", "go.sum", "Cargo.toml", "Cargo.lock",
)  # fmt: skip
_MAKE_TEST = re.compile(r"^test\s*:(?!=)", re.MULTILINE)


class TestConfig(BaseModel):
    """The `[test]` table of shipway.toml."""

    __test__ = False
    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: Framework | None = Field(default=None, description="Which runner; detected when omitted")
    command: str | None = Field(default=None, max_length=10_000, description="Shell command that runs the tests")
    setup: str | None = Field(default=None, max_length=10_000, description="Shell command that installs dependencies")
    setup_inputs: list[str] | None = Field(default=None, description="Files whose change re-runs setup")
    python: str | None = Field(default=None, max_length=500, description="Interpreter for pytest")
    ci: str | None = Field(default=None, max_length=10_000, description="Shell command of the CI gate")
    junit: list[str] = Field(default_factory=list, description="JUnit files a custom command writes (globs)")


class TestSpec(BaseModel):
    """What will run: the framework, where the choice came from, and the optional steps."""

    __test__ = False
    model_config = ConfigDict(frozen=True)

    framework: Framework
    source: str = Field(description="Why this framework: the file that decided it")
    command: str | None = None
    setup: str | None = None
    setup_inputs: tuple[str, ...] = ()
    python: str | None = None
    ci: str | None = None
    junit: tuple[str, ...] = ()
    go_module: str | None = None
    node_script: str | None = None


def read_test_config(text: str | None) -> TestConfig:
    """The `[test]` table of a shipway.toml's text (defaults without one)."""
    return read_table(text, "test", TestConfig)


def _read(path: Path, limit: int = 1 << 20) -> str:
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= limit:
            return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    return ""


def _pytest_source(root: Path) -> str | None:
    pyproject = _read(root / "pyproject.toml")
    if "[tool.pytest" in pyproject:
        return "pyproject.toml [tool.pytest]"
    if (root / "pytest.ini").is_file():  # pytest takes any pytest.ini as its configuration, even an empty one
        return "pytest.ini"
    for name, section in (("setup.cfg", "tool:pytest"), ("tox.ini", "pytest")):
        text = _read(root / name)
        if text and _has_section(text, section):
            return f"{name} [{section}]"
    if (root / "conftest.py").is_file():
        return "conftest.py"
    if pyproject and any(root.glob("tests/test_*.py")):
        return "pyproject.toml and tests/test_*.py"
    return None


def _has_section(text: str, section: str) -> bool:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return f"[{section}]" in text
    return parser.has_section(section)


def node_test_script(root: Path) -> tuple[str | None, bool]:
    """The package.json test script (None without a real one) and whether it has dependencies."""
    try:
        package = json.loads(_read(root / "package.json") or "{}")
    except ValueError:
        return None, False
    if not isinstance(package, dict):
        return None, False
    scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
    script = scripts.get("test") if isinstance(scripts, dict) else None
    has_deps = bool(package.get("dependencies") or package.get("devDependencies"))
    if not isinstance(script, str) or not script.strip() or script.strip() == NPM_DEFAULT_TEST:
        return None, has_deps
    return script.strip(), has_deps


def go_module(root: Path) -> str | None:
    match = re.search(r"^module\s+(\S+)", _read(root / "go.mod"), re.MULTILINE)
    return match[1].strip('"') if match else None


def _detect(root: Path) -> tuple[Framework, str] | None:
    found = _pytest_source(root)
    if found:
        return "pytest", found
    script, _ = node_test_script(root)
    if script:
        return "node", f"package.json scripts.test: {script[:80]}"
    if (root / "go.mod").is_file():
        return "go", "go.mod"
    if (root / "Cargo.toml").is_file():
        return "cargo", "Cargo.toml"
    if _MAKE_TEST.search(_read(root / "Makefile")):
        return "make", "Makefile test target"
    return None


def _default_setup(framework: Framework, root: Path) -> str | None:
    if framework != "node":
        return None
    _, has_deps = node_test_script(root)
    if not has_deps:
        return None
    install = "ci" if (root / "package-lock.json").is_file() else "install"
    return f"npm {install} --no-audit --no-fund"


def resolve_spec(root: Path, config: TestConfig) -> TestSpec:
    """The test spec for the tree at `root`; ToolInputError says how to configure one if none is found."""
    if config.framework:
        framework, source = config.framework, "shipway.toml [test] framework"
    elif config.command:
        framework, source = "command", "shipway.toml [test] command"
    else:
        detected = _detect(root)
        if detected is None:
            raise ToolInputError(
                "no test setup found (looked for pytest config, a package.json test script, go.mod, Cargo.toml and "
                'a Makefile test target); add to shipway.toml:\n[test]\ncommand = "your test command"'
            )
        framework, source = detected
    if framework == "command" and not config.command:
        raise ToolInputError('shipway.toml [test] framework = "command" needs command = "..."')
    setup = config.setup if config.setup is not None else _default_setup(framework, root)
    inputs = tuple(config.setup_inputs) if config.setup_inputs is not None else DEPENDENCY_FILES
    return TestSpec(
        framework=framework,
        source=source,
        command=config.command,
        setup=setup or None,
        setup_inputs=tuple(name for name in inputs if (root / name).is_file()),
        python=config.python,
        ci=config.ci,
        junit=tuple(config.junit),
        go_module=go_module(root) if framework == "go" else None,
        node_script=node_test_script(root)[0] if framework == "node" else None,
    )
