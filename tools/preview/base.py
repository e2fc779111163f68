"""The `PreviewTarget` port: bring a task's preview up, keep it while it lives, take it down.

A preview is always of one commit: the host copies that commit's files into a snapshot
directory (`PreviewJob.tree`), and the target builds and serves or uploads from there.
Backends: `LocalPreview` (a process in the sandbox, reached through a forwarded loopback
port; tools/preview/local.py) and `S3Preview` (static files in a bucket; tools/preview/s3.py).

One host process, the preview's supervisor (mcp_server/preview_host.py), owns each preview
for its whole life: it calls `start`, then `wait`, then `stop`, whatever ends it.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from sandbox.base import Workspace
from tools.errors import ToolInputError

TargetName = Literal["local", "s3"]
TARGETS: tuple[TargetName, ...] = ("local", "s3")
LOG_FILE = "preview.log"
SOCKET_DIR = "sock"
SOCKET_FILE = "relay.sock"
LOG_READ_CAP = 4 << 20


class PreviewFailed(ToolInputError):
    """The preview could not be built, started or reached; `log_tail` holds what it printed."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class PreviewJob(BaseModel):
    """Everything a target needs to preview one commit of one task (serialised for the supervisor)."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    target: TargetName
    commit: str
    tree: Path = Field(description="Snapshot of the commit's files; the sandbox's writable workdir")
    run_dir: Path = Field(
        description="Short host path, owned by Shipway: the log (writable by the sandbox, not "
        "replaceable) and sock/ (the relay's socket; the sandbox's own directory)"
    )
    uid: int | None = Field(default=None, description="Unprivileged uid the sandboxed commands run as (root only)")
    hidden: list[Path] = Field(default_factory=list, description="Host paths the sandbox must not see")
    readonly: list[tuple[Path, Path]] = Field(default_factory=list, description="(host, sandbox) read-only binds")
    python: str = Field(description="Interpreter for the relay and the built-in servers")
    relay: Path = Field(description="Where relay.py is inside the sandbox")
    ttl_s: float
    ready_timeout_s: float
    build_timeout_s: float
    options: dict[str, Any] = Field(default_factory=dict, description="The target's settings (no secrets)")
    left_out: list[str] = Field(default_factory=list, description="Committed paths the snapshot left out (links out)")

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    @property
    def socket_path(self) -> Path:
        return self.run_dir / SOCKET_DIR / SOCKET_FILE

    def workspace(self) -> Workspace:
        return Workspace(workdir=self.tree, hidden=tuple(self.hidden), readonly=tuple(self.readonly), uid=self.uid,
                         writable=(self.run_dir,))  # fmt: skip


def open_plain(path: Path, flags: int = os.O_RDONLY) -> int:
    """A file descriptor of `path` only if it is a regular file reached without following a symlink.

    The sandbox can write to a preview's log; Shipway (maybe root) must never be led by it to read
    or append to another file, nor hang on a FIFO or a device."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return fd


def append_log(path: Path, text: str) -> None:
    """Append to a preview's log, safely (see open_plain)."""
    fd = open_plain(path, os.O_WRONLY | os.O_APPEND)
    with os.fdopen(fd, "ab") as out:
        out.write(text.encode("utf-8", "replace"))


class Deployment(BaseModel):
    """A preview that answers: where, and what a target needs to find it again."""

    url: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Ending(BaseModel):
    """How a preview ended while it was being waited on."""

    how: Literal["stopped", "expired", "failed"]
    reason: str
    log_tail: str = ""


class PreviewTarget(Protocol):
    name: TargetName

    def start(self, job: PreviewJob) -> Deployment:
        """Build if configured, then bring the preview up; return once it answers, or raise PreviewFailed."""
        ...

    def wait(self, job: PreviewJob, stop: threading.Event, deadline: float) -> Ending:
        """Block while the preview lives: until `stop` is set, `deadline` (time.monotonic) passes, or it dies."""
        ...

    def stop(self, job: PreviewJob) -> None:
        """Take the preview down and remove everything it created; safe to call twice."""
        ...


def log_tail(path: Path, limit: int = 2_000) -> str:
    """The last `limit` characters of a log file ('' when there is none, or it is not a plain file)."""
    limit = min(limit, LOG_READ_CAP)
    try:
        with os.fdopen(open_plain(path), "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - limit * 4))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text[-limit:]
