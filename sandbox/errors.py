"""Errors of the sandbox room.

SandboxError
 ├── SandboxUnavailable     no isolation backend here; the message says how to install one
 └── WorktreeError          a task worktree could not be created, found or removed
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class for sandbox failures."""


class SandboxUnavailable(SandboxError):
    """Bubblewrap is missing or cannot create namespaces on this machine."""


class WorktreeError(SandboxError):
    """A task worktree operation failed."""


INSTALL_BUBBLEWRAP = (
    "Shipway runs every command in a bubblewrap sandbox, and `bwrap` was not found. Install it: "
    "Debian/Ubuntu `sudo apt-get install bubblewrap`; Fedora `sudo dnf install bubblewrap`; "
    "Arch `sudo pacman -S bubblewrap`. (SHIPWAY_UNSAFE_NO_SANDBOX=1 runs commands on the host "
    "without isolation; never use it with code you have not read.)"
)
