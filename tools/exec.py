"""Running a command in a task's sandboxed workspace."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sandbox.base import DEFAULT_LIMITS, ExecResult, Limits, NetworkPolicy, Sandbox, Workspace
from tools.errors import ToolInputError

MAX_COMMAND_CHARS = 10_000
MAX_TIMEOUT_S = 1_800.0


def check_command(command: str | Sequence[str]) -> list[str]:
    """argv for `command` (a shell string runs under /bin/sh -c), or ToolInputError."""
    text = command if isinstance(command, str) else " ".join(command)
    if not text.strip():
        raise ToolInputError("command is empty; give the shell command to run, e.g. `pytest -q`")
    if "\x00" in text:
        raise ToolInputError("command contains a NUL character")
    if len(text) > MAX_COMMAND_CHARS:
        raise ToolInputError(
            f"command is {len(text):,} characters; the limit is {MAX_COMMAND_CHARS:,}. Put a long script in a "
            "file in the worktree and run that file"
        )
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def check_timeout(timeout_s: float) -> float:
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise ToolInputError(f"timeout_s must be more than 0 and at most {MAX_TIMEOUT_S:g}, got {timeout_s:g}")
    return timeout_s


def run_command(
    sandbox: Sandbox,
    workspace: Workspace,
    command: str | Sequence[str],
    timeout_s: float,
    limits: Limits = DEFAULT_LIMITS,
) -> ExecResult:
    """Run `command` in `workspace` with no network; its output, exit status and timing."""
    argv = check_command(command)
    limits = dataclasses.replace(limits, timeout_s=check_timeout(timeout_s))
    return sandbox.run(argv, workspace, limits, NetworkPolicy.NONE)
