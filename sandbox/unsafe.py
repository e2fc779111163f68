"""`UnsafeHostSandbox`: runs commands on the host with NO isolation.

Only reachable with SHIPWAY_UNSAFE_NO_SANDBOX=1, for machines where bubblewrap cannot run.
It still scrubs the environment, applies rlimits, enforces the timeout and output caps and
kills the process group, but the command can read and write anything the Shipway user can,
reach the network, and a daemon that leaves its process group survives. Every result says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sandbox.base import DEFAULT_LIMITS, ExecResult, Limits, NetworkPolicy, Workspace
from sandbox.process import prlimit_prefix, run_watched

WARNING = "UNSANDBOXED: SHIPWAY_UNSAFE_NO_SANDBOX=1 is set; this command ran on the host without isolation"


class UnsafeHostSandbox:
    name = "unsafe-host"

    def run(
        self,
        argv: Sequence[str],
        workspace: Workspace,
        limits: Limits = DEFAULT_LIMITS,
        network: NetworkPolicy = NetworkPolicy.NONE,
    ) -> ExecResult:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workspace.workdir),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TERM": os.environ.get("TERM", "dumb"),
            "SHIPWAY_SANDBOX": "0",
        } | workspace.env
        result = run_watched(
            prlimit_prefix(limits, None) + list(argv),
            env=env,
            cwd=workspace.workdir,
            limits=limits,
            disk_path=workspace.workdir,
            sandboxed=False,
        )
        return result.model_copy(update={"warning": WARNING})
