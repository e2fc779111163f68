"""Choosing the sandbox backend: bubblewrap, or the unsafe host runner only when asked for by name."""

from __future__ import annotations

from sandbox.base import Sandbox
from sandbox.bubblewrap import BubblewrapSandbox
from sandbox.unsafe import UnsafeHostSandbox


def choose_sandbox(unsafe_no_sandbox: bool = False) -> Sandbox:
    """BubblewrapSandbox, or SandboxUnavailable with install instructions; the unsafe runner only on request."""
    if unsafe_no_sandbox:
        return UnsafeHostSandbox()
    return BubblewrapSandbox()
