"""The `Forge` port: predict conflicts, publish a pull request, merge it, and hear from it.

The review gate (mcp_server/review_gate.py) decides *whether* a merge may happen; a forge
only knows *how*. Backends: `LocalForge` (branches in the repository itself, a real `git
merge` into the base branch) and `GitHubForge` (a pushed branch and a pull request on GitHub
or GitHub Enterprise). A forge with reviewers and checks of its own reports them through
`reviews` and `checks`; the gate imports them under its own rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from tools.errors import ToolInputError

MergeMethod = Literal["merge", "ff"]
ChecksState = Literal["pending", "success", "failure"]


class MergeRefused(ToolInputError):
    """The forge could not merge (conflicts, a moved base, local changes in the way); nothing changed."""


class ForgeUnavailable(ToolInputError):
    """The forge could not be reached or refused the request; the message says what to check."""


class Published(BaseModel):
    """Where a pull request lives on the forge."""

    number: int | None = Field(default=None, description="The forge's PR number; None for the local forge")
    url: str | None = None
    draft: bool = False


class Merged(BaseModel):
    commit: str = Field(description="The base branch's new head")
    method: str = Field(description="fast-forward or merge commit")


class ForgeReview(BaseModel):
    """A review left on the forge itself (GitHub's Approve / Request changes)."""

    id: str
    login: str
    state: Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]
    commit: str | None = Field(description="The head commit the reviewer saw")
    body: str = ""
    at: datetime | None = None
    by_bot: bool = Field(description="A bot account, or the very account Shipway publishes with (the agent)")


class Check(BaseModel):
    name: str
    state: ChecksState
    url: str | None = None
    detail: str = ""


class ForgeChecks(BaseModel):
    """Every status and check run the forge has for one commit, combined."""

    commit: str
    state: ChecksState
    checks: list[Check] = Field(default_factory=list)


class Forge(Protocol):
    name: str

    def conflicts(self, base_branch: str, head_sha: str) -> list[str]:
        """Files that would conflict if `head_sha` were merged into `base_branch` now."""
        ...

    def publish(self, task_id: str, head_branch: str, base_branch: str, title: str, body: str) -> Published:
        """Open (or update) the pull request for `head_branch`."""
        ...

    def merge(self, head_branch: str, base_branch: str, head_sha: str, message: str) -> Merged:
        """Merge exactly `head_sha` into `base_branch`, or raise MergeRefused changing nothing."""
        ...

    def reviews(self, head_branch: str) -> list[ForgeReview]:
        """Reviews left on the forge's own PR page, oldest first (none for the local forge)."""
        ...

    def checks(self, head_sha: str) -> ForgeChecks | None:
        """The forge's own CI verdict on a commit, or None when it runs no CI of its own."""
        ...

    def comment(self, head_branch: str, text: str) -> None:
        """Leave a note on the PR (a decision taken in Shipway); a no-op where there is no page."""
        ...

    def ready(self, head_branch: str) -> None:
        """Take the PR out of draft: CI passed and it waits for people."""
        ...

    def close(self, head_branch: str) -> None:
        """Close the PR without merging (rejected)."""
        ...


def combine(commit: str, checks: list[Check]) -> ForgeChecks:
    """One verdict from many checks: any failure fails; all green (and at least one) passes."""
    if any(c.state == "failure" for c in checks):
        state: ChecksState = "failure"
    elif checks and all(c.state == "success" for c in checks):
        state = "success"
    else:
        state = "pending"
    return ForgeChecks(commit=commit, state=state, checks=checks)
