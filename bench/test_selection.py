"""Affected-test selection: how much time it saves, and whether it misses any failure.

    .venv/bin/python -m bench.test_selection [--modules 40] [--tests 12] [--work-ms 20] [--repeat 2]

Generates a Python repository in layers (core <- mid <- top modules, each with its own test
file of --tests tests, plus one conftest fixture importing a core module), then for each seeded
regression (a wrong return value in one module) runs, through Shipway's sandboxed runner on a
task worktree:
- `full`: every test; its failures are the ground truth;
- `affected`: the tests the import graph selects.
Printed per seed: tests selected, time(affected)/time(full), and the share of the failing tests
`affected` caught (it must be 100%). Baselines from the same run: the full suite through the
sandbox, and bare `python -m pytest` on the host (the sandbox's own cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mcp_server.app import ServerDeps, open_deps
from mcp_server.config import load_settings
from mcp_server.tasks.model import Actor
from tools.edits.blocks import EditBlock
from tools.testrun.junit import parse_junit
from tools.testrun.report import TestReport

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip
ACTOR = Actor(kind="agent", name="bench")


@dataclass(frozen=True)
class Layout:
    core: list[str]
    mid: list[str]
    top: list[str]

    @property
    def all(self) -> list[str]:
        return self.core + self.mid + self.top


def module_source(name: str, deps: list[str], offset: int) -> str:
    imports = "".join(f"from app.{d} import value as {d}_value\n" for d in deps)
    body = " + ".join([str(offset), *(f"{d}_value(x)" for d in deps)])
    return f"{imports}\n\ndef value(x: int) -> int:\n    return x + {body}\n"


def expected(name: str, layout: Layout, deps: dict[str, list[str]], offsets: dict[str, int], x: int) -> int:
    return x + offsets[name] + sum(expected(d, layout, deps, offsets, x) for d in deps[name])


def generate(root: Path, modules: int, tests: int, work_ms: int) -> tuple[Layout, dict[str, list[str]]]:
    n_core, n_mid = max(2, modules // 8), max(3, modules * 3 // 8)
    layout = Layout([f"core{i}" for i in range(n_core)], [f"mid{i}" for i in range(n_mid)],
                    [f"top{i}" for i in range(modules - n_core - n_mid)])  # fmt: skip
    deps = {name: [] for name in layout.core}
    deps |= {name: [layout.core[i % n_core]] for i, name in enumerate(layout.mid)}
    deps |= {name: [layout.mid[i % n_mid], layout.mid[(i * 7 + 1) % n_mid]] for i, name in enumerate(layout.top)}
    offsets = {name: i for i, name in enumerate(layout.all)}
    (root / "app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "app" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "bench-app"\nversion = "0"\n\n'
                                         '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')  # fmt: skip
    for name in layout.all:
        (root / "app" / f"{name}.py").write_text(module_source(name, sorted(set(deps[name])), offsets[name]))
        lines = [f"import time\n\nfrom app.{name} import value\n"]
        for t in range(tests):
            want = expected(name, layout, {k: sorted(set(v)) for k, v in deps.items()}, offsets, t)
            work = f"    time.sleep({work_ms / 1000})\n" if work_ms else ""
            lines.append(f"\n\ndef test_{name}_{t}() -> None:\n{work}    assert value({t}) == {want}\n")
        (root / "tests" / f"test_{name}.py").write_text("".join(lines))
    # a fixture directory whose conftest reaches core0: its tests depend on core0 through it
    (root / "tests" / "fixtures").mkdir()
    (root / "tests" / "fixtures" / "conftest.py").write_text(
        "import pytest\n\nfrom app.core0 import value\n\n\n@pytest.fixture\ndef base() -> int:\n    return value(0)\n"
    )
    (root / "tests" / "fixtures" / "test_with_fixture.py").write_text(
        f"def test_fixture_value(base: int) -> None:\n    assert base == {offsets['core0']}\n"
    )
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "bench app"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=GIT_ENV)
    return layout, {k: sorted(set(v)) for k, v in deps.items()}


def regress(deps: ServerDeps, root: Path, module: str) -> str:
    task = deps.tasks.start(f"regress {module}", ACTOR)
    source = (root / "app" / f"{module}.py").read_text()
    broken = source.replace("    return x + ", "    return x + 1 + ", 1)
    report = deps.workspaces.edit(task.id, ACTOR, blocks=[EditBlock(path=f"app/{module}.py", content=broken)])
    assert report.status == "applied", report.refusal()
    return task.id


def failing(deps: ServerDeps, report: TestReport) -> set[str]:
    """Every failing id, read from the run's JUnit file (the report lists the first 50 in detail)."""
    data = (deps.tests.store.run_dir(report.run_id) / "junit.xml").read_bytes()
    workdir = str(deps.settings.state_path / "worktrees" / (report.task_id or ""))
    return {c.id for c in parse_junit(data, "pytest", workdir) if c.outcome in ("failed", "error")}


def timed_run(deps: ServerDeps, task_id: str, selection: str) -> tuple[TestReport, float]:
    start = time.perf_counter()
    report = deps.tests.run_task(task_id, selection, None, ACTOR, baseline=False)  # type: ignore[arg-type]
    return report, time.perf_counter() - start


def bare_pytest(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root, capture_output=True,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--tests", type=int, default=12, help="tests per module")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (median kept)")
    parser.add_argument("--work-ms", type=int, default=20, help="time each test spends, as real tests do")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="shipway-selection-")) / "repo"
    layout, _ = generate(root, args.modules, args.tests, args.work_ms)
    deps = open_deps(load_settings(repo=root, test_python=sys.executable))
    total = args.modules * args.tests + 1
    print(f"repo: {args.modules} modules, {total} tests of ~{args.work_ms} ms (core <- mid <- top)\n")
    seeds = [layout.core[0], layout.core[-1], layout.mid[0], layout.mid[-1], layout.top[0], layout.top[-1]]
    header = ("seeded module", "selected", "failing", "caught", "affected s", "full s", "ratio")
    print(f"{header[0]:<14} " + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (9, 8, 7, 11, 7, 6), strict=True)))
    ratios, caught_all = [], True
    for module in seeds:
        task_id = regress(deps, root, module)
        fulls = [timed_run(deps, task_id, "full") for _ in range(args.repeat)]
        affecteds = [timed_run(deps, task_id, "affected") for _ in range(args.repeat)]
        truth, picked = failing(deps, fulls[0][0]), failing(deps, affecteds[0][0])
        caught = len(truth & picked) / len(truth) if truth else 1.0
        caught_all &= caught == 1.0
        t_full = statistics.median(t for _, t in fulls)
        t_aff = statistics.median(t for _, t in affecteds)
        ratios.append(t_aff / t_full)
        selected = affecteds[0][0].totals.total
        print(f"{module:<14} {selected:>9} {len(truth):>8} {caught:>7.0%} {t_aff:>11.2f} {t_full:>7.2f} "
              f"{t_aff / t_full:>6.2f}")  # fmt: skip
    bare = statistics.median(bare_pytest(root) for _ in range(args.repeat))
    clean = deps.tasks.start("no change", ACTOR)
    sandboxed = statistics.median(timed_run(deps, clean.id, "full")[1] for _ in range(args.repeat))
    print(f"\ntime(affected)/time(full): median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f})")  # fmt: skip
    print(f"failing tests caught by affected: {'100% on every seed' if caught_all else 'MISSED SOME'}")
    print(f"full suite: sandboxed run_tests {sandboxed:.2f} s vs bare host pytest {bare:.2f} s "
          f"(x{sandboxed / bare:.2f}, same run)")  # fmt: skip


if __name__ == "__main__":
    main()
