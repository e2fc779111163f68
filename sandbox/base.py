"""The `Sandbox` port and what goes in and out of it.

A sandbox runs one command over a `Workspace` (what is writable, what is hidden, what is
re-exposed read-only) under `Limits`, and returns an `ExecResult`. Backends: bubblewrap (the
default; `sandbox/bubblewrap.py`) and the loudly-labelled unsafe host runner
(`sandbox/unsafe.py`), which exists only behind SHIPWAY_UNSAFE_NO_SANDBOX=1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

MiB = 1 << 20
GiB = 1 << 30
TIMEOUT_EXIT_CODE = 124


class NetworkPolicy(StrEnum):
    """`none`: a private network namespace with only its own loopback; nothing outside is
    reachable, not even the host's 127.0.0.1. `loopback`: the same isolation, for a process
    that serves one port the host will reach through a forwarder (deploy previews)."""

    NONE = "none"
    LOOPBACK = "loopback"
    OPEN = "open"
    """The host's network: only for a dependency-install step, and only when the server's policy allows it."""


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 120.0
    cpu_seconds: int = 600
    address_space_bytes: int = 8 * GiB
    file_size_bytes: int = 1 * GiB
    open_files: int = 1024
    processes: int = 256
    output_bytes: int = 1 * MiB
    """Kept per stream (head and tail); the middle is replaced by a marker."""
    output_kill_bytes: int = 64 * MiB
    """A command that writes more than this in total is killed."""
    disk_write_bytes: int = 4 * GiB
    """Killed when the filesystem holding the workspace loses more than this during the run."""
    tmp_bytes: int = 512 * MiB
    """Size of the private /tmp."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Workspace:
    """What a sandboxed command may see and touch.

    `workdir` is the writable host directory the command starts in; `writable` adds others at
    the same path (a report directory, a per-task cache). `hidden` paths are covered by empty
    directories; `readonly` binds (source, destination) re-expose selected paths on top of
    them, and `readonly_files` place generated files. `uid`, when set, is the unprivileged
    host uid the command runs as (used when Shipway itself runs as root).
    """

    workdir: Path
    hidden: tuple[Path, ...] = ()
    readonly: tuple[tuple[Path, Path], ...] = ()
    readonly_files: tuple[tuple[Path, Path], ...] = ()
    uid: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    writable: tuple[Path, ...] = ()


class ExecResult(BaseModel):
    """The outcome of one sandboxed command."""

    exit_code: int = Field(description="The command's exit status; 124 on timeout, 128+N when killed by signal N")
    stdout: str
    stderr: str
    truncated: bool = Field(description="Output was longer than the cap; the middle was replaced by a marker")
    timed_out: bool
    duration_ms: int
    sandboxed: bool = Field(description="False only when SHIPWAY_UNSAFE_NO_SANDBOX=1 is set")
    limit_hit: str | None = Field(default=None, description="Which limit ended the command, if one did")
    warning: str | None = None


class Sandbox(Protocol):
    name: str

    def run(
        self,
        argv: Sequence[str],
        workspace: Workspace,
        limits: Limits = DEFAULT_LIMITS,
        network: NetworkPolicy = NetworkPolicy.NONE,
    ) -> ExecResult: ...
