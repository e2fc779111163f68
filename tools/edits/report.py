"""What an edit did (or would do, or why it was refused), as tool output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tools.edits.locate import Method

EditStatus = Literal["applied", "already_applied", "refused"]
HunkStatus = Literal["applied", "already_applied", "failed"]
Action = Literal["modified", "created", "deleted", "renamed", "unchanged"]


class HunkReport(BaseModel):
    file: str
    hunk: int = Field(description="1-based position of the hunk (or block) within its file's changes")
    status: HunkStatus
    method: Method | None = Field(default=None, description="exact, whitespace, indentation or fuzzy")
    line: int | None = Field(default=None, description="1-based line of the original file where it applied")
    notes: list[str] = Field(default_factory=list, description="Everything the engine had to interpret")


class FileChange(BaseModel):
    path: str
    action: Action
    old_path: str | None = None
    added: int = 0
    removed: int = 0


class EditProblem(BaseModel):
    file: str
    hunk: int | None = None
    reason: str
    closest: str | None = Field(default=None, description="The file's nearest real lines, numbered")


class EditReport(BaseModel):
    status: EditStatus
    dry_run: bool
    files: list[FileChange] = Field(default_factory=list)
    hunks: list[HunkReport] = Field(default_factory=list)
    problems: list[EditProblem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    diff: str = Field(default="", description="Unified diff of what changed (or would change)")
    diff_truncated: bool = False
    commit: str | None = Field(default=None, description="The edit's commit on the task branch")

    def refusal(self) -> str:
        """The refusal as text a model can act on: each failure, why, and the nearest real lines."""
        lines = ["edit refused; nothing was changed."]
        for problem in self.problems:
            where = problem.file + (f", hunk {problem.hunk}" if problem.hunk else "")
            lines.append(f"- {where}: {problem.reason}")
            if problem.closest:
                lines.append(f"  closest lines in {problem.file}:")
                lines.extend("    " + row for row in problem.closest.splitlines())
        done = [h for h in self.hunks if h.status != "failed"]
        if done:
            lines.append(f"({len(done)} other hunk(s) would have applied; resend them together with the fix)")
        return "\n".join(lines)
