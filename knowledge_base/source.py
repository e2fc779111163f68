"""Where the index reads a repository from: a port, so the index never runs git itself.

The tools layer implements it with hardened host git (`tools/git_source.py`); tests may use
the same. Keeping git out of this leaf room means the one place that decides how git may be
run on untrusted repositories stays in `sandbox/host_git.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TreeEntry:
    path: str  # repo-relative, forward slashes
    blob: str  # git blob SHA: the key that makes indexing incremental
    size: int


class TreeSource(Protocol):
    def head(self) -> str | None:
        """The commit to index (None when the repository has no commits)."""
        ...

    def entries(self, commit: str) -> list[TreeEntry]:
        """Every regular file in the commit's tree (symlinks and submodules left out)."""
        ...

    def read_blobs(self, blobs: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """The content of each blob, in any order."""
        ...
