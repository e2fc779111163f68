"""The agent evaluation harness (bench/agent_eval.py), wired end to end with recorded scripts.

It runs in .venv-eval, deepeval's own virtualenv, which `make test` builds. A replay says
nothing about a model; these tests prove that the harness drives the real loop and that each
metric moves with what happened: the shipped golden tasks pass, and a variant whose hidden
test asks for something else, and whose expected tools differ, fails on both counts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.samples import EXAMPLES
from tests.test_sandbox_tool import needs_bwrap

EVAL_PYTHON = REPO_ROOT / ".venv-eval" / "bin" / "python"
pytestmark = [
    needs_bwrap,
    pytest.mark.slow,
    pytest.mark.skipif(not EVAL_PYTHON.exists(), reason="deepeval's virtualenv is missing: `make eval-install`"),
]


def _evaluate(*args: str) -> list[dict[str, Any]]:
    proc = subprocess.run([str(EVAL_PYTHON), "-m", "bench.agent_eval", "--replay", "--json", *args],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return results


def test_the_shipped_golden_tasks_pass_their_hidden_tests_with_their_replays() -> None:
    results = {r["name"]: r for r in _evaluate()}
    assert set(results) == {"hello-shout", "hello-greeting"}
    for r in results.values():
        assert r["state"] == "merged" and r["success"], r
        assert r["hidden_tests"] == "passed: 2 passed", r
        assert r["tool_correctness"] == 1.0 and r["plan_conformance"] == 1.0, r
        assert r["steps"] == 6 and r["tokens"] > 0, r
    assert results["hello-shout"]["changed_files"] == ["hello/cli.py", "tests/test_shout.py"]


def test_a_task_whose_hidden_test_and_tools_differ_scores_lower(tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    variant = shutil.copytree(EXAMPLES / "golden" / "hello-shout", golden / "hello-whisper")
    (variant / "hidden" / "test_hidden_shout.py").write_text(
        "from hello.cli import main\n\n\ndef test_whisper(capsys) -> None:\n"
        "    main(['--shout', 'grace'])\n    assert capsys.readouterr().out.strip() == 'hello, grace.'\n"
    )
    spec = json.loads((variant / "task.json").read_text())
    spec["expected_tools"] = [*spec["expected_tools"], "revert_edit", "repo_map"]
    (variant / "task.json").write_text(json.dumps(spec))

    [result] = _evaluate("--golden", str(golden))
    assert result["state"] == "merged" and not result["success"]
    assert result["hidden_tests"] == "failed: .hidden/test_hidden_shout.py::test_whisper", result
    assert 0.0 < result["tool_correctness"] < 1.0, result
