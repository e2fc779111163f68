"""The knowledge base's `TreeSource` over a git repository, read with hardened host git.

`ls-tree` and `cat-file --batch` read objects only: no filters, hooks or drivers run, so they
are safe on untrusted repositories (and `run_git` switches those off regardless).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from knowledge_base.source import TreeEntry
from sandbox.host_git import GitError, git_argv, git_env, run_git

_BATCH_TIMEOUT_S = 600


class GitTreeSource:
    def __init__(self, repo: Path, ref: str = "HEAD") -> None:
        self.repo = repo
        self.ref = ref

    def head(self) -> str | None:
        proc = run_git(self.repo, "rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}", check=False)
        return proc.stdout.strip() or None

    def entries(self, commit: str) -> list[TreeEntry]:
        out = run_git(self.repo, "ls-tree", "-r", "-l", "-z", "--full-tree", commit).stdout
        result = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, path = record.split("\t", 1)
            mode, kind, blob, size = meta.split()
            # 120000 is a symlink (its blob is the target path), 160000 a submodule.
            if kind == "blob" and mode in {"100644", "100755"} and size.isdigit():
                result.append(TreeEntry(path, blob, int(size)))
        return result

    def read_blobs(self, blobs: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        wanted = list(blobs)
        if not wanted:
            return
        proc = subprocess.Popen(
            git_argv(self.repo, "cat-file", "--batch"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=git_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None
        timer = threading.Timer(_BATCH_TIMEOUT_S, proc.kill)
        timer.start()
        # Feed requests from a thread: git answers while we still write, and a pipe that fills
        # on both sides would deadlock.
        feeder = threading.Thread(target=_feed, args=(proc.stdin, wanted), daemon=True)
        feeder.start()
        try:
            for blob in wanted:
                header = proc.stdout.readline().split()
                if len(header) != 3:
                    raise GitError(f"git cat-file could not read blob {blob}")
                data = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)  # the newline after each object
                yield blob, data
        finally:
            timer.cancel()
            proc.kill()
            proc.wait()
            feeder.join(timeout=5)
            proc.stdout.close()
            if not proc.stdin.closed:
                proc.stdin.close()


def _feed(stdin: IO[bytes], blobs: list[str]) -> None:
    try:
        stdin.write("".join(f"{blob}\n" for blob in blobs).encode())
        stdin.close()
    except (BrokenPipeError, ValueError):
        pass  # git exited early; the reader reports it
