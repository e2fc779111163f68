"""Where agent transcripts live: files under the state directory, or an S3 bucket a team shares.

A transcript is a round's conversation, one line per step (TaskJournal writes it; the task's
events carry each line's sha256). A worker on another machine resumes a task from it, so with
many machines it must be shared: `S3Transcripts` keeps each line as its own object,
`<prefix>/agent-runs/<task>/round-<n>/<line>.json` (S3 has no append), and lists them in order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from mcp_server.artifacts import S3Artifacts

RUNS_DIR = "agent-runs"


class Transcripts(Protocol):
    def lines(self, task_id: str, round_no: int) -> list[bytes]: ...

    def append(self, task_id: str, round_no: int, line: bytes) -> None:
        """Add a line durably (it is on disk, or in S3, when this returns)."""
        ...

    def truncate(self, task_id: str, round_no: int, keep: int) -> None:
        """Drop lines past the first `keep` (written by a step that crashed before its event)."""
        ...

    def where(self, task_id: str, round_no: int) -> str:
        """Where a person finds it (a path or an s3:// URL), for messages."""
        ...


class LocalTranscripts:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / RUNS_DIR

    def _file(self, task_id: str, round_no: int) -> Path:
        return self.root / task_id / f"round-{round_no}.jsonl"

    def lines(self, task_id: str, round_no: int) -> list[bytes]:
        path = self._file(task_id, round_no)
        return path.read_bytes().splitlines() if path.exists() else []

    def append(self, task_id: str, round_no: int, line: bytes) -> None:
        path = self._file(task_id, round_no)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as out:
            out.write(line + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def truncate(self, task_id: str, round_no: int, keep: int) -> None:
        path = self._file(task_id, round_no)
        if keep == 0:
            path.unlink(missing_ok=True)
        elif path.exists():
            path.write_bytes(b"".join(line + b"\n" for line in self.lines(task_id, round_no)[:keep]))

    def where(self, task_id: str, round_no: int) -> str:
        return str(self._file(task_id, round_no))


class S3Transcripts:
    """One object per line in the team's artifacts bucket (mcp_server/artifacts.py)."""

    def __init__(self, artifacts: S3Artifacts) -> None:
        self.artifacts = artifacts

    def _dir(self, task_id: str, round_no: int) -> str:
        return f"{RUNS_DIR}/{task_id}/round-{round_no}/"

    def lines(self, task_id: str, round_no: int) -> list[bytes]:
        found = [self.artifacts.get(name) for name in self.artifacts.names(self._dir(task_id, round_no))]
        return [line for line in found if line is not None]

    def append(self, task_id: str, round_no: int, line: bytes) -> None:
        number = len(self.artifacts.names(self._dir(task_id, round_no))) + 1
        self.artifacts.put(f"{self._dir(task_id, round_no)}{number:06d}.json", line, "application/json")

    def truncate(self, task_id: str, round_no: int, keep: int) -> None:
        for name in self.artifacts.names(self._dir(task_id, round_no))[keep:]:
            self.artifacts.delete(name)

    def where(self, task_id: str, round_no: int) -> str:
        return self.artifacts.url(self._dir(task_id, round_no))
