"""Test runs on disk: `<state>/test-runs/<run-id>/` holds report.json, log.txt and the raw report.

Base-commit results live in `<state>/test-runs/baseline/<commit>-<spec>.json`, one entry per
unit run there (a test file for pytest, the whole selection otherwise), so a later selection
only runs the units the cache lacks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path

from tools.errors import ToolInputError
from tools.testrun.report import Outcome, TestReport

RUN_ID = re.compile(r"^[0-9a-f]{12}$")
KEEP_RUNS = 500
IMPORT_CACHE = "import-cache.json"
KEEP_IMPORTS = 50_000
LOG_FILE = "log.txt"
REPORT_FILE = "report.json"


class TestRunStore:
    __test__ = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self._imports: dict[str, list[str]] | None = None
        self._imports_saved = 0

    def new_run(self, owner: int | None) -> tuple[str, Path]:
        """A fresh run id and its directory, writable by the sandbox's uid `owner`."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._prune()
        run_id = secrets.token_hex(6)
        path = self.root / run_id
        path.mkdir(mode=0o755)
        if owner is not None:
            os.chown(path, owner, owner)
        return run_id, path

    def run_dir(self, run_id: str) -> Path:
        if not RUN_ID.fullmatch(run_id.strip().lower()):
            raise ToolInputError(f"{run_id[:40]!r} is not a test run id (12 hex characters, from run_tests)")
        return self.root / run_id.strip().lower()

    def save(self, report: TestReport, log: str) -> None:
        path = self.run_dir(report.run_id)
        (path / LOG_FILE).write_text(log, encoding="utf-8", errors="replace")
        temp = path / (REPORT_FILE + ".tmp")
        temp.write_text(report.model_dump_json(indent=2), encoding="utf-8")
        temp.replace(path / REPORT_FILE)

    def load(self, run_id: str) -> TestReport:
        file = self.run_dir(run_id) / REPORT_FILE
        if not file.is_file():
            raise ToolInputError(f"no test run {run_id!r}; run_tests returns the run_id of each run")
        return TestReport.model_validate_json(file.read_text(encoding="utf-8"))

    def log(self, run_id: str) -> str:
        file = self.run_dir(run_id) / LOG_FILE
        if not file.is_file():
            raise ToolInputError(f"no log for test run {run_id!r}")
        return file.read_text(encoding="utf-8", errors="replace")

    def _prune(self) -> None:
        runs = sorted((p for p in self.root.iterdir() if RUN_ID.fullmatch(p.name)), key=lambda p: p.stat().st_mtime)
        for old in runs[: max(0, len(runs) - KEEP_RUNS)]:
            shutil.rmtree(old, ignore_errors=True)

    # Base-commit results: {unit: {test id: outcome}}

    def _baseline_file(self, commit: str, fingerprint: str) -> Path:
        return self.root / "baseline" / f"{commit}-{fingerprint}.json"

    def baseline(self, commit: str, fingerprint: str) -> dict[str, dict[str, Outcome]]:
        file = self._baseline_file(commit, fingerprint)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def add_baseline(self, commit: str, fingerprint: str, units: dict[str, dict[str, Outcome]]) -> None:
        file = self._baseline_file(commit, fingerprint)
        file.parent.mkdir(parents=True, exist_ok=True)
        merged = self.baseline(commit, fingerprint) | units
        temp = file.with_suffix(".tmp")
        temp.write_text(json.dumps(merged), encoding="utf-8")
        temp.replace(file)

    # Imported names per file content, for affected selection (see tools/testrun/affected.py)

    def import_cache(self) -> dict[str, list[str]]:
        if self._imports is None:
            try:
                data = json.loads((self.root / IMPORT_CACHE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
            self._imports = data if isinstance(data, dict) else {}
            self._imports_saved = len(self._imports)
        return self._imports

    def save_import_cache(self, cache: dict[str, list[str]]) -> None:
        if len(cache) == self._imports_saved:
            return
        if len(cache) > KEEP_IMPORTS:  # keep the newest entries (dicts keep insertion order)
            for key in list(cache)[: len(cache) - KEEP_IMPORTS]:
                del cache[key]
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / (IMPORT_CACHE + ".tmp")
        temp.write_text(json.dumps(cache), encoding="utf-8")
        temp.replace(self.root / IMPORT_CACHE)
        self._imports_saved = len(cache)
