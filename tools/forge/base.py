"""The `Forge` port: predict conflicts, publish a pull request, merge it.

The review gate (mcp_server/review_gate.py) decides *whether* a merge may happen; a forge
only knows *how*. Backends: `LocalForge` (branches in the repository itself, a real `git
merge` into the base branch) and, with a token, GitHub.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, Field

from tools.errors import ToolInputError

MergeMethod = Literal["merge", "ff"]


class MergeRefused(ToolInputError):
    """The forge could not merge (conflicts, a moved base, local changes in the way); nothing changed."""


class Published(BaseModel):
    """Where a pull request lives on the forge."""

    number: int | None = Field(default=None, description="The forge's PR number; None for the local forge")
    url: str | None = None


class Merged(BaseModel):
    commit: str = Field(description="The base branch's new head")
    method: str = Field(description="fast-forward or merge commit")


class Forge(Protocol):
    name: str

    def conflicts(self, base_branch: str, head_sha: str) -> list[str]:
        """Files that would conflict if `head_sha` were merged into `base_branch` now."""
        ...

    def publish(self, task_id: str, head_branch: str, base_branch: str, title: str, body: str) -> Published:
        """Open (or update) the pull request for `head_branch`."""
        ...

    def merge(self, base_branch: str, head_sha: str, message: str) -> Merged:
        """Merge exactly `head_sha` into `base_branch`, or raise MergeRefused changing nothing."""
        ...
