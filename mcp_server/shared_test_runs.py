"""Test reports and logs that every machine of a team can read.

A worker on one machine runs a task's tests; the reviewer's server, or the worker that takes
the task over, reads the report by its run id (`get_test_report`, the review page, the
`shipway://test-runs/{id}/log` resource). With a shared artifacts bucket each saved run is
also written to `test-runs/<run>/report.json` and `log.txt` there, and a run this machine does
not have is read from the bucket. The local copy stays the first place looked, so a machine
reads its own runs without a request.
"""

from __future__ import annotations

from pathlib import Path

from mcp_server.artifacts import S3Artifacts
from tools.errors import ToolInputError
from tools.testrun.report import TestReport
from tools.testrun.store import LOG_FILE, REPORT_FILE, TestRunStore


class SharedTestRunStore(TestRunStore):
    __test__ = False

    def __init__(self, root: Path, artifacts: S3Artifacts) -> None:
        super().__init__(root)
        self.artifacts = artifacts

    def _name(self, run_id: str, file: str) -> str:
        return f"test-runs/{self.run_dir(run_id).name}/{file}"

    def save(self, report: TestReport, log: str) -> None:
        super().save(report, log)
        self.artifacts.put(self._name(report.run_id, LOG_FILE), log.encode("utf-8", "replace"),
                           "text/plain; charset=utf-8")  # fmt: skip
        self.artifacts.put(self._name(report.run_id, REPORT_FILE), report.model_dump_json(indent=2).encode(),
                           "application/json")  # fmt: skip

    def load(self, run_id: str) -> TestReport:
        if (self.run_dir(run_id) / REPORT_FILE).is_file():
            return super().load(run_id)
        data = self.artifacts.get(self._name(run_id, REPORT_FILE))
        if data is None:
            raise ToolInputError(f"no test run {run_id!r} here or in {self.artifacts.url('test-runs/')}; "
                                 "run_tests returns the run_id of each run")  # fmt: skip
        return TestReport.model_validate_json(data)

    def log(self, run_id: str) -> str:
        if (self.run_dir(run_id) / LOG_FILE).is_file():
            return super().log(run_id)
        data = self.artifacts.get(self._name(run_id, LOG_FILE))
        if data is None:
            raise ToolInputError(f"no log for test run {run_id!r} here or in {self.artifacts.url('test-runs/')}")
        return data.decode("utf-8", "replace")
