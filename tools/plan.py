"""A change plan: what the planner proposes and a human approves before any code is written.

The approved plan's `files` bound what edits may touch (plan conformance, tools/edits); the
rest is for the reviewer: the goal in one sentence, the steps, the tests, the risks and how
to tell the change is done.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_ITEMS = 50
MAX_ITEM_CHARS = 1_000


Items = Annotated[list[str], Field(max_length=MAX_ITEMS)]


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    goal: str = Field(min_length=1, max_length=2_000, description="The change in a sentence or two")
    steps: list[str] = Field(min_length=1, max_length=MAX_ITEMS, description="What will be done, in order")
    files: list[str] = Field(
        min_length=1,
        max_length=200,
        description="Files to create or change: repo-relative paths, 'dir/' or globs; edits outside are refused",
    )
    tests: Items = Field(default_factory=list, description="Tests to add or run")
    risks: Items = Field(default_factory=list, description="What could go wrong")
    acceptance: Items = Field(default_factory=list, description="How a reviewer can tell it is done")

    @field_validator("steps", "tests", "risks", "acceptance")
    @classmethod
    def _short_items(cls, items: list[str]) -> list[str]:
        cleaned = [item.strip() for item in items]
        for item in cleaned:
            if not item:
                raise ValueError("items must not be empty")
            if len(item) > MAX_ITEM_CHARS:
                raise ValueError(f"an item is {len(item):,} characters; the limit is {MAX_ITEM_CHARS:,}")
            if "\x00" in item:
                raise ValueError("items must not contain NUL characters")
        return cleaned

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, files: list[str]) -> list[str]:
        cleaned = []
        for raw in files:
            path = raw.strip().removeprefix("./")
            pure = PurePosixPath(path)
            if not path or len(path) > 500 or "\x00" in path or "\n" in path:
                raise ValueError(f"file entry {raw[:60]!r} is empty, too long or has control characters")
            if pure.is_absolute() or ".." in pure.parts:
                raise ValueError(f"file entry {raw[:60]!r} must be relative to the repository, without '..'")
            if pure.parts and pure.parts[0] in (".git", ".shipway"):
                raise ValueError(f"file entry {raw[:60]!r} names a directory edits can never touch")
            cleaned.append(path)
        return cleaned

    def sha256(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def markdown(self) -> str:
        """The plan for a PR body or a review page (the text is untrusted: escape it for HTML)."""

        def bullets(items: list[str]) -> str:
            return "\n".join(f"- {item}" for item in items) or "- (none)"

        steps = "\n".join(f"{n}. {step}" for n, step in enumerate(self.steps, 1))
        return (
            f"**Goal.** {self.goal}\n\n**Steps**\n{steps}\n\n**Files**\n"
            + "\n".join(f"- `{f}`" for f in self.files)
            + f"\n\n**Tests**\n{bullets(self.tests)}\n\n**Risks**\n{bullets(self.risks)}"
            f"\n\n**Acceptance**\n{bullets(self.acceptance)}"
        )
